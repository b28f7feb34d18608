"""Export: the manifest contract, the ExecuTorch program with switchable gates, and the bundle.

Core ML (``ondevice.export.coreml``) and LiteRT (``ondevice.export.litert``) are imported on first use:
their dependencies are heavy or optional.
"""

from .manifest import MANIFEST_NAME, MANIFEST_VERSION, ManifestError, load_manifest, new_manifest, save_manifest

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "ManifestError",
    "export_bundle",
    "export_executorch",
    "export_static_executorch",
    "load_manifest",
    "new_manifest",
    "save_manifest",
]


def __getattr__(name: str) -> object:
    # executorch is imported lazily: `import ondevice.export` stays cheap for the manifest alone.
    if name in ("export_executorch", "export_static_executorch"):
        from . import executorch

        return getattr(executorch, name)
    if name == "export_bundle":
        from .bundle import export_bundle

        return export_bundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
