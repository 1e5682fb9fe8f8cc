"""Evaluation: a checkpoint scored on a split, its metric files and confusion-matrix figures.

The metric functions themselves are in convclass.metrics; the report of an evaluation is drawn by the pipeline.
"""
from .evaluate import Scored, evaluate, format_report, score_checkpoint

__all__ = ["Scored", "evaluate", "format_report", "score_checkpoint"]
