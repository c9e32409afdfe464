"""``mmlong info VIDEO`` and ``mmlong frames VIDEO``: what a video holds, and a contact sheet of sampled frames."""

from __future__ import annotations

import argparse
from pathlib import Path

INFO_EXAMPLES = """\
examples:
  mmlong info clip.mp4
  mmlong info clip.mp4 --json
  mmlong info phone.mov --decoder pyav
"""

# Image formats the contact sheet can be saved as (Pillow picks the format from the ending).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

FRAMES_EXAMPLES = """\
examples:
  mmlong frames clip.mp4 --sample uniform:16 --out sheet.png
  mmlong frames movie.mp4 --sample window:60-120+fps:0.5 --max-side 240
  mmlong frames movie.mp4 --sample fps:1,max_frames=32 --columns 8
"""


def _add_video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="path of the video file")
    parser.add_argument("--decoder", choices=["auto", "decord", "pyav"], default="auto",
                        help="video decoder: auto = decord, or PyAV when decord cannot read the file (default: auto)")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="read the intact part of a truncated file instead of failing")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser(
        "info", help="show what a video holds (duration, fps, frames, size, codec, rotation, VFR)",
        description="Show a video's duration, frame rate, frame count, upright size, codec, display rotation, "
                    "whether the frame rate varies, whether it has audio, and which decoder reads it. Bad input "
                    "(missing, empty, not a video, audio only, truncated, ...) is one error line and exit status 2.",
        epilog=INFO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_video_arguments(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)

    frames = subparsers.add_parser(
        "frames", help="save a contact sheet (PNG) of sampled frames",
        description="Sample frames with a sampler spec, decode them resized, and save a grid of them, each "
                    "captioned with its time (mm:ss.s), as a PNG.",
        epilog=FRAMES_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_video_arguments(frames)
    frames.add_argument("--sample", default="uniform:16", metavar="SPEC",
                        help="frame sampler: uniform:N | fps:F[,max_frames=M] | window:START-END+SAMPLER | scene:N "
                             "(default: uniform:16)")
    frames.add_argument("--out", metavar="PNG", help="output image (default: <video name>.frames.png here)")
    frames.add_argument("--max-side", type=int, default=240, metavar="PX",
                        help="resize frames on decode so the longer side is at most PX (default: 240)")
    frames.add_argument("--columns", type=int, metavar="N", help="tiles per row (default: about square)")
    frames.set_defaults(func=run_frames)


def info_lines(meta: object) -> list[str]:
    """The lines ``mmlong info`` prints for a :class:`~mmlong.types.VideoMeta`."""
    from mmlong.apps.render import format_seconds

    m = meta
    rate = "variable" if m.variable_frame_rate else "constant"
    return [
        f"file:      {m.path}",
        f"duration:  {format_seconds(m.duration)} ({m.duration:.3f} s)",
        f"frames:    {m.num_frames} at {m.fps:.3f} fps ({rate} frame rate)",
        f"size:      {m.width}x{m.height} (upright)",
        f"rotation:  {m.rotation} degrees",
        f"codec:     {m.codec}",
        f"audio:     {'yes' if m.has_audio else 'no'}",
        f"decoder:   {m.decoder}",
    ]


def run_info(args: argparse.Namespace) -> int:
    from mmlong.apps.options import dump_json
    from mmlong.media.video import open_video

    with open_video(args.video, decoder=args.decoder, max_pixels=None, allow_damaged=args.allow_damaged) as video:
        meta, notes = video.meta, list(video.notes)
    if args.json:
        record = meta.to_dict()
        if notes:
            record["notes"] = notes
        print(dump_json(record))
        return 0
    print("\n".join(info_lines(meta) + [f"note:      {n}" for n in notes]))
    return 0


def run_frames(args: argparse.Namespace) -> int:
    from mmlong.apps.render import format_seconds
    from mmlong.cache import atomic_write
    from mmlong.errors import ConfigError
    from mmlong.media.contact_sheet import contact_sheet, image_bytes
    from mmlong.media.video import open_video
    from mmlong.sampling.basic import SampleContext, build_sampler
    from mmlong.validate import check_output_file

    if args.max_side is not None and args.max_side < 1:
        raise ConfigError(f"--max-side must be a positive number of pixels, got {args.max_side}")
    if args.columns is not None and args.columns < 1:
        raise ConfigError(f"--columns must be >= 1, got {args.columns}")
    out = check_output_file(args.out or f"{Path(args.video).stem}.frames.png", IMAGE_SUFFIXES, "--out")
    sampler = build_sampler(args.sample)
    if sampler.needs_encoder or sampler.needs_query:
        raise ConfigError(f"sampler {args.sample!r} needs an encoder or a question; use `mmlong ask` for it")
    with open_video(args.video, decoder=args.decoder, max_side=args.max_side,
                    allow_damaged=args.allow_damaged) as video:
        sampled = sampler.sample(video.meta, SampleContext(source=video))
        frames = video.read(sampled.indices)
    labels = [format_seconds(t) for t in frames.timestamps.tolist()]
    sheet = contact_sheet(frames.data.numpy(), labels, columns=args.columns)
    atomic_write(out, image_bytes(sheet, out.suffix))
    print(f"wrote {out} ({len(frames)} frames of {video.meta.num_frames}, {frames.data.shape[2]}x"
          f"{frames.data.shape[1]} each, decoder {video.meta.decoder})")
    print("times: " + ", ".join(labels))
    return 0
