"""Early exits: multi-exit models, IMTA's training techniques (PAPERS.md C), Bolukbasi's policies (B)."""
