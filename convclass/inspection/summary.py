# TODO: remove once training/ imports convclass.data.summary (the training core is being rewritten in parallel)
from ..data.summary import class_counts, data_summary, format_data_summary, imbalance_ratio  # noqa: F401
