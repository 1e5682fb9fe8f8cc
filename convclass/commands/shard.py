"""convclass shard"""


def add_parser(sub) -> None:
    p = sub.add_parser("shard", help="write any data convclass reads as WebDataset tar shards (train/val/test) "
                                     "plus a shards.json index, for streaming and multi-node training")
    p.add_argument("data", help="built-in name, folder, CSV, archive or hf:NAME (as for train --data)")
    p.add_argument("out", help="folder the shards and shards.json are written to")
    p.add_argument("--shard-size", type=int, default=1000, metavar="N",
                   help="images per shard (default: %(default)s; ~100 MB of 224-px JPEGs)")
    p.add_argument("--data-root", default="~/.cache/convclass", help="where built-in datasets are downloaded")
    p.add_argument("--seed", type=int, default=0, help="seed of the training samples' shuffled order")
    p.set_defaults(fn=run)


def run(args) -> int:
    from ..data import find_data
    from ..data.shards import write_shards
    r = write_shards(find_data(args.data, args.data_root), args.out, args.shard_size, args.seed)
    counts = ", ".join(f"{k} {v}" for k, v in r["splits"].items())
    skipped = f"; skipped {r['skipped']} unreadable image(s)" if r["skipped"] else ""
    print(f"wrote shards to {r['out']} ({counts}){skipped}\ntrain with: convclass train --data '{r['data']}'")
    return 0
