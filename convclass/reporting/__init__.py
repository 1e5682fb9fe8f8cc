"""Figures and the self-contained report.html of a run, drawn from the files in its folder."""
from .run_report import FIGURES, build_report, draw_figures, load_predictions, read_history, save_predictions

__all__ = ["FIGURES", "build_report", "draw_figures", "load_predictions", "read_history", "save_predictions"]
