"""convclass explain"""


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM heatmaps, layer activations and first-layer filters as PNG")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+", help="image files, folders or globs")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    p.add_argument("--layer", help="layer to explain (default: the model's last convolution)")
    p.add_argument("--target", help="class to explain (default: the predicted class)")
    p.add_argument("--feature-maps", metavar="LAYER", dest="feature_layer",
                   help="also save this layer's activations per image and the first layer's filters")
    p.add_argument("--output", help="folder for the PNGs (default RUN/explain)")
    p.add_argument("--device", default="auto")
    p.set_defaults(fn=run)


def run(args) -> int:
    import sys

    from ..interpret import explain_images
    r = explain_images(args.run, args.images, method=args.method, layer=args.layer, output=args.output,
                       target=args.target, feature_layer=args.feature_layer, device=args.device)
    for it in r["items"]:
        print(f"{it['path']}: predicted {it['predicted']} ({it['probability']:.3f}) -> {it['overlay']}")
        if "feature_maps" in it:
            print(f"  activations of {args.feature_layer}: {it['feature_maps']}")
    if r["filters"]:
        print(f"first-layer filters: {r['filters']}")
    for path, reason in r["skipped"]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{r['method']} at layer {r['layer']}; written to {r['output_dir']}/")
    return 0
