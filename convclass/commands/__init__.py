"""One module per subcommand; each has `add_parser(subparsers)` and stays under a screen of code.

To add a subcommand: write commands/<name>.py with add_parser() and list it in COMMANDS (order = --help order).
"""
COMMANDS = ["inspect", "shard", "train", "evaluate", "report", "explain", "cv", "label-issues", "compare", "predict",
            "models", "lr-find", "tune", "export", "serve"]
