"""convclass models

The listing is a table, not the registry: counting parameters means importing torch and torchvision and
building every model (6-12 s, most of it torchvision's imports), while the table prints at once.
tests/test_cli_models.py builds each registered model on the meta device and fails, printing the right row, when
a count or description here differs from the registry.
"""

# (name, parameters with 10 classes at 3x32x32, description): the registry's, in list_models() order
CATALOG = [
    ('airbench', 1_971_352,
     "airbench94's CIFAR net: whitened 2x2 stem, 3 conv groups (64/256/256), frozen-scale BN, GELU."),
    ('cnn3', 653_194,
     'Keras CIFAR-10 CNN: three conv-ReLU-BN-maxpool blocks (32, 64, 128), dense 256 and 128 with BN, dropout.'),
    ('cnn5', 1_838_346,
     'PyTorch 5-block CNN: five conv-BN-ReLU-maxpool blocks (32 to 512 filters), linear 512, dropout 0.6.'),
    ('cnn6', 308_394,
     'Keras CIFAR-10 6-conv CNN: three pairs of 3x3 convs (32, 64, 128) with BN, max-pool, growing dropout.'),
    ('convnext_base', 87_572_106,
     'torchvision ConvNeXt-Base (88M), 2x2 patch stem at 64 px and below.'),
    ('convnext_tiny', 27_824_362,
     'torchvision ConvNeXt-Tiny (28M), 2x2 patch stem at 64 px and below.'),
    ('efficientnet_lite0', 3_383_818,
     'EfficientNet-Lite0 (3.4M; 4.7M at 1000 classes), ImageNet weights offline with pretrained=True (224 px).'),
    ('mlp', 1_707_274,
     'The fully connected baseline: flatten, two hidden layers (512, 256), dropout.'),
    ('resnet18', 11_173_962,
     'torchvision ResNet-18 (11M), CIFAR stem at 64 px and below.'),
    ('resnet50', 23_520_842,
     'torchvision ResNet-50 (24M), CIFAR stem at 64 px and below.'),
    ('shallow', 72_234,
     'Keras MNIST single conv layer: 8 kernels of 3x3 (no padding), ReLU, flatten, dense output.'),
]


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models with parameter counts")
    p.set_defaults(fn=run)


def run(args) -> int:
    print(f"{'model':<20}{'params (10 classes, 3x32x32)':>30}  description")
    for name, params, description in CATALOG:
        print(f"{name:<20}{params:>30,}  {description}")
    print("also: timm:NAME, any timm model (pip install timm)")
    return 0
