"""The quickstart notebook runs top to bottom (nbclient), so it never rots; its plots are real PNG outputs."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # cwd = tmp_path: the notebook's runs/ and sample files never land in the repository
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pngs) >= 2 + 5 + 3 + 1  # data, run figures, Grad-CAM overlays, comparison
    assert (tmp_path / "runs" / "quickstart-cnn3" / "report.html").exists()
    assert (tmp_path / "runs" / "compare-mlp-cnn3.png").exists()
