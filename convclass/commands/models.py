"""convclass models"""


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models with parameter counts")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..models import count_parameters, create_model, list_models, model_entry
    print(f"{'model':<16}{'params (10 classes, 3x32x32)':>30}  description")
    for name in list_models():
        m = create_model(name, num_classes=10, in_chans=3, img_size=32)
        print(f"{name:<16}{count_parameters(m):>30,}  {model_entry(name).description}")
    return 0
