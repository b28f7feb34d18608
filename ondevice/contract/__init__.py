"""The bundle contract: what a bundle holds and how the apps read it (manifest.json and its JSON Schemas)."""

from .manifest import MANIFEST_NAME, MANIFEST_VERSION, ManifestError, load_manifest, new_manifest, save_manifest

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "ManifestError", "load_manifest", "new_manifest", "save_manifest"]
