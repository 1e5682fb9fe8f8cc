"""`export_hf`: a run's model as a Hugging Face-style folder (model.safetensors, config.json, README.md model
card), checked by loading it back, and pushed to the Hub when asked and huggingface_hub is installed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import first_line, resolve_checkpoint
from ..errors import ConvclassError
from ..models import model_from_checkpoint
from ..models.hf_folder import write_model_folder
from .hf_card import model_card

__all__ = ["HfExport", "export_hf", "push_folder"]

CARD = "README.md"


@dataclass
class HfExport:
    folder: Path
    files: list[Path]
    pushed_to: str | None = None

    def summary(self) -> str:
        size = sum(f.stat().st_size for f in self.files) / 1e6
        lines = [f"wrote {self.folder}/ ({', '.join(f.name for f in self.files)}; {size:.1f} MB), loaded back with "
                 "the same outputs; use it with `convclass predict FOLDER IMAGES` or load_model(FOLDER)"]
        if self.pushed_to:
            lines.append(f"pushed to https://huggingface.co/{self.pushed_to}")
        return "\n".join(lines)


def export_hf(run_or_ckpt: str | Path, output: str | Path | None = None, push_to: str | None = None) -> HfExport:
    """Write RUN/export/hf/ (or `output`): the weights as safetensors, config.json, a model card from the run's
    files; then load the folder back and compare its outputs with the checkpoint's; push when `push_to` names a
    Hub repository (owner/name)."""
    ckpt_path = resolve_checkpoint(run_or_ckpt)
    model, pre, _, ckpt = model_from_checkpoint(ckpt_path)
    folder = Path(output) if output else ckpt_path.parent / "export" / "hf"
    if folder.exists() and not folder.is_dir():
        raise ConvclassError(f"--output {folder} is a file; name a folder for the model files")
    if (folder / "best.pt").exists() or (folder / "last.pt").exists():
        raise ConvclassError(f"--output {folder} is a run folder; name another folder for the model files")
    files = write_model_folder(ckpt, folder)
    card = folder / CARD
    card.write_text(model_card(ckpt, pre, ckpt_path.parent, ckpt_path.parent.name))
    files.append(card)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, pre.channels, pre.img_size, pre.img_size), generator=g, dtype=torch.uint8)
    back = model_from_checkpoint(folder).model
    with torch.no_grad():
        same = torch.equal(model(pre.to_input(x)), back(pre.to_input(x)))
    if not same:  # the same weights in the same model: any difference is a bug, never rounding
        for f in files:
            f.unlink(missing_ok=True)
        raise ConvclassError(f"the folder written to {folder} does not give the checkpoint's outputs; it was removed. "
                             "Report this with the model name")
    result = HfExport(folder, files)
    if push_to:
        push_folder(folder, push_to)
        result.pushed_to = push_to
    return result


def push_folder(folder: Path, repo: str) -> None:
    """Upload the folder to the Hugging Face Hub repository `repo` (created if missing, with the user's token)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ConvclassError("--push-to needs huggingface_hub: pip install huggingface_hub (the folder was written "
                             f"to {folder})") from None
    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="convclass export --format hf")
    except Exception as e:  # network, authentication, a bad repo name: the hub client's own error types
        raise ConvclassError(f"could not push {folder} to {repo} ({type(e).__name__}: {first_line(e, 120)}); the "
                             "folder is written, so fix the cause (e.g. `huggingface-cli login`) and retry") from None
