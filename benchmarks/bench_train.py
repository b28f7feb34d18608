"""Training cost of ADN self-distillation vs plain training of the super-net, same model, same batches.

    python -m pytest benchmarks/bench_train.py --benchmark-columns=median,iqr --benchmark-group-by=param:model

The paper claims training time comparable to one network; ADN does two forward/backward passes per
step (super-net + base-net) but the base-net pass is cheaper, so expect about 1.5-2x per step.
"""

import pytest
import torch

from ondevice.models import build_model
from ondevice.train import TrainConfig, step_function

BATCH = 64


@pytest.mark.parametrize("model_name", ["resnet20_adn"])
@pytest.mark.parametrize("method", ["static", "adn", "random-skip"])
def test_train_step_throughput(benchmark, model_name, method):
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10, in_chans=1, image_size=28)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = step_function(TrainConfig(method=method), model.num_stages)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    rng = torch.Generator().manual_seed(0)

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        step(model, x, y, rng)
        optimizer.step()

    benchmark.pedantic(one_step, rounds=15, warmup_rounds=2)
    benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.median
