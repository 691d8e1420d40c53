"""postfx on arrays: stylize a picture with `postfx.stylize`, with and without its depth map.

No window and no context of your own: stylize() makes a headless EGL context on
first use and runs the same PostFX pass a renderer does.

    python3 examples/stylize_photo.py                      # examples/sample.png + sample_depth.png
    python3 examples/stylize_photo.py --image photo.jpg --depth photo_depth.png --out a.png --out-no-depth b.png

The depth map is a 16-bit PNG of normalized linear depth, (z - near) / (far - near) scaled to
0..65535, as `postfx dataset render` writes it. Without depth, an RGBD model such as
the default ink sees every pixel at the far plane (normalized depth 1.0): depth-driven parts of
the look (outlines at depth edges, distance fog) then follow that flat, distant depth.
"""
import argparse
import time
from pathlib import Path

from PIL import Image

import postfx
from postfx.image_io import read_color, read_depth

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=HERE / "sample.png", type=Path, help="the picture (RGB)")
    parser.add_argument("--depth", default=HERE / "sample_depth.png", type=Path,
                        help="its depth map: normalized linear depth as 8- / 16-bit grey or a float TIFF")
    parser.add_argument("--model", default=postfx.DEFAULT_STYLE, help="bundled style name or .safetensors file")
    parser.add_argument("--out", default="stylized.png", type=Path, help="result with depth")
    parser.add_argument("--out-no-depth", default="stylized_no_depth.png", type=Path, help="result, RGB only")
    args = parser.parse_args()

    # postfx's reader: modes by rule (16-bit grey scaled, not clipped), EXIF orientation applied
    rgb = read_color(args.image)                                              # (H, W, 3) uint8
    depth = read_depth(args.depth, size=rgb.shape[1::-1])                     # (H, W) float32 in [0, 1], 0 = near
    model = postfx.load(args.model)
    print(f"{args.image.name}: {rgb.shape[1]}x{rgb.shape[0]}, model {model.name!r} reads "
          f"{'colour and depth' if model.uses_depth else 'colour only'}")

    for label, depth_map, out in (("with depth", depth, args.out),
                                  ("without depth (the model sees depth 1.0 everywhere)", None, args.out_no_depth)):
        start = time.perf_counter()
        stylized = postfx.stylize(rgb, depth=depth_map, model=model)           # (H, W, 3) uint8
        seconds = time.perf_counter() - start
        Image.fromarray(stylized).save(out)
        print(f"{label}: {seconds * 1000:.0f} ms -> {out}")
    print("(the first call also creates the EGL context and compiles the shaders)")


if __name__ == "__main__":
    main()
