"""convclass export"""
import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run's model to ONNX, OpenVINO or TorchScript, checked against PyTorch")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "openvino", "hf"],
                   help="hf: a Hugging Face-style folder (model.safetensors, config.json, README.md model card), "
                        "loaded back by convclass predict/serve or load_model (default: onnx)")
    p.add_argument("--output", help="model file to write (default: RUN/export/model.onnx, model-int8.onnx, "
                                    "model.torchscript.pt or model.openvino.xml + .bin); its metadata goes beside "
                                    "it as .json")
    p.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=True,
                   help="ONNX: any batch size, so a server can batch requests (default); --no-dynamic-batch fixes "
                        "it at 1 for runtimes that need static shapes. TorchScript is always dynamic")
    p.add_argument("--int8", action="store_true", help="ONNX: quantize to int8 and print the test accuracy drop")
    p.add_argument("--data", help="images for the checks (default: the data the run trained on)")
    p.add_argument("--samples", type=int, default=64, help="images for the fp32 parity check")
    p.add_argument("--push-to", metavar="OWNER/NAME", help="hf: upload the folder to this Hugging Face Hub repository "
                                                          "(needs huggingface_hub and a login)")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..errors import ConvclassError
    if args.format == "hf" or args.push_to:
        if args.format != "hf" or args.int8:
            raise ConvclassError("--push-to goes with --format hf, and --int8 with --format onnx")
        from ..export.hf import export_hf
        print(export_hf(args.run, output=args.output, push_to=args.push_to).summary())
        return 0
    from ..export import export_model
    res = export_model(args.run, format=args.format, output=args.output, dynamic_batch=args.dynamic_batch,
                       int8=args.int8, data=args.data, samples=args.samples)
    print(res.summary())
    return 0
