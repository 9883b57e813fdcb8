"""Icons for pymmcore-widgets without the network.

pymmcore-widgets draws its buttons with Iconify icons, which superqt fetches
through pyconify from ``api.iconify.design`` the first time each is shown. A
microscope PC is often offline: there, every such widget shows blank buttons
and the stage widget fails outright. pairscope ships the icons those widgets
name (a subset of the Iconify sets, with their licences, in
``icons/iconify_subset.json``) and `install` points pyconify at them: every
SVG is rendered here, as the Iconify API would (colour, size, flip,
rotation), and nothing is requested from the network.

To refresh the subset after a pymmcore-widgets upgrade::

    npm pack @iconify-json/mdi ...   # one tarball per icon set
    python -m acquire.gui.offline_icons SUBSET.json TARBALL...

which keeps every icon the installed pymmcore-widgets and superqt name.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import importlib.resources
import json
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "IconSubset",
    "UnknownIcon",
    "install",
    "load_subset",
    "render_svg",
    "widget_icon_keys",
]

SUBSET_RESOURCE = "icons/iconify_subset.json"
_KEY = re.compile(r"""["']([a-z0-9]+(?:-[a-z0-9]+)*):([a-z0-9]+(?:-[a-z0-9]+)*)["']""")
_DEFAULT_SIZE = 16
_BLANK_BODY = ""


class UnknownIcon(KeyError):
    """An icon that the shipped subset does not hold."""


@dataclass(frozen=True)
class IconSubset:
    """Iconify icon sets, each reduced to the icons pairscope's widgets use.

    Attributes
    ----------
    sets : dict
        ``prefix -> {"width", "height", "icons", "aliases", "license",
        "author"}`` in Iconify's JSON layout.

    """

    sets: dict[str, dict[str, Any]]

    def icon(self, prefix: str, name: str) -> dict[str, Any]:
        """The icon's body and geometry, aliases resolved.

        Raises
        ------
        UnknownIcon
            The set or the icon is not in the subset.

        """
        icon_set = self.sets.get(prefix)
        if icon_set is None:
            raise UnknownIcon(f"{prefix}:{name}")
        transforms: dict[str, Any] = {}
        for _ in range(8):  # aliases may chain; Iconify allows a few levels
            if name in icon_set["icons"]:
                data = {
                    "width": icon_set.get("width", _DEFAULT_SIZE),
                    "height": icon_set.get("height", _DEFAULT_SIZE),
                    **icon_set["icons"][name],
                }
                # an alias's flips toggle its parent's, its rotation adds
                for flip in ("hFlip", "vFlip"):
                    data[flip] = bool(data.get(flip, False)) ^ bool(
                        transforms.get(flip, False)
                    )
                data["rotate"] = int(data.get("rotate", 0)) + int(
                    transforms.get("rotate", 0)
                )
                return data
            alias = icon_set.get("aliases", {}).get(name)
            if alias is None:
                break
            for flip in ("hFlip", "vFlip"):
                transforms[flip] = bool(transforms.get(flip, False)) ^ bool(
                    alias.get(flip, False)
                )
            transforms["rotate"] = int(transforms.get("rotate", 0)) + int(
                alias.get("rotate", 0)
            )
            name = alias["parent"]
        raise UnknownIcon(f"{prefix}:{name}")


@functools.cache
def load_subset() -> IconSubset:
    """The icon subset shipped with pairscope."""
    text = (
        importlib.resources.files("acquire.gui").joinpath(SUBSET_RESOURCE).read_text()
    )
    return IconSubset(sets=json.loads(text)["sets"])


def _rotation_quarters(rotate: str | int | None) -> int:
    if rotate is None:
        return 0
    if isinstance(rotate, int):
        return rotate % 4
    text = str(rotate).strip().lower().removesuffix("deg")
    return (round(float(text)) // 90) % 4 if text else 0


def render_svg(
    subset: IconSubset,
    prefix: str,
    name: str,
    *,
    color: str | None = None,
    height: str | int | None = None,
    width: str | int | None = None,
    flip: str | None = None,
    rotate: str | int | None = None,
    box: bool | None = None,
) -> bytes:
    """SVG of an icon, as ``api.iconify.design/PREFIX/NAME.svg`` returns it.

    Parameters
    ----------
    subset : IconSubset
        Where the icon's data comes from.
    prefix, name : str
        Icon set and icon.
    color : str, optional
        Replaces ``currentColor``.
    height, width : str or int, optional
        Rendered size (default ``1em`` high, width by the aspect ratio).
    flip : str, optional
        ``"horizontal"``, ``"vertical"`` or both, comma-separated.
    rotate : str or int, optional
        Quarter turns (1, 2, 3) or degrees (``"90deg"``).
    box : bool, optional
        Add an empty rectangle covering the view box.

    Returns
    -------
    bytes
        The SVG document.

    Raises
    ------
    UnknownIcon
        The icon is not in the subset.

    """
    icon = subset.icon(prefix, name)
    left, top = float(icon.get("left", 0)), float(icon.get("top", 0))
    w, h = float(icon["width"]), float(icon["height"])
    flips = {part.strip() for part in (flip or "").split(",") if part.strip()}
    h_flip = icon["hFlip"] ^ ("horizontal" in flips)
    v_flip = icon["vFlip"] ^ ("vertical" in flips)
    quarters = int(icon["rotate"]) + _rotation_quarters(rotate)
    body = str(icon["body"])
    transforms: list[str] = []
    # Iconify's own order (iconify-utils iconToSVG): flips, then the rotation
    # in front of them; both flips together are a half turn
    if h_flip and v_flip:
        quarters += 2
    elif h_flip:
        transforms += [f"translate({_num(w + left)} {_num(-top)})", "scale(-1 1)"]
        left = top = 0.0
    elif v_flip:
        transforms += [f"translate({_num(-left)} {_num(h + top)})", "scale(1 -1)"]
        left = top = 0.0
    quarters %= 4
    if quarters == 1:
        centre = h / 2 + top
        transforms.insert(0, f"rotate(90 {_num(centre)} {_num(centre)})")
    elif quarters == 2:
        transforms.insert(0, f"rotate(180 {_num(w / 2 + left)} {_num(h / 2 + top)})")
    elif quarters == 3:
        centre = w / 2 + left
        transforms.insert(0, f"rotate(-90 {_num(centre)} {_num(centre)})")
    if quarters % 2:
        left, top, w, h = top, left, h, w
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    if box:
        body += (
            f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(w)}" '
            f'height="{_num(h)}" fill="rgba(255, 255, 255, 0)"/>'
        )
    if color:
        body = body.replace("currentColor", color)
    out_h, out_w = _size(height, width, w, h)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{out_w}" height="{out_h}" '
        f'viewBox="{_num(left)} {_num(top)} {_num(w)} {_num(h)}">{body}</svg>'
    )
    return svg.encode()


def _num(value: float) -> str:
    return f"{value:g}"


def _size(
    height: str | int | None, width: str | int | None, w: float, h: float
) -> tuple[str, str]:
    if height is None and width is None:
        return "1em", "1em" if w == h else f"{_num(w / h)}em"
    if height is not None and width is not None:
        return str(height), str(width)
    if height is not None:
        value = float(height)
        return str(height), _num(value * w / h)
    value = float(width)  # type: ignore[arg-type]
    return _num(value * h / w), str(width)


def _cache_folder() -> Path:
    # one per user: on a shared PC another user's folder is not writable
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some services, containers)
        user = "user"
    folder = Path(tempfile.gettempdir()) / f"pairscope-icons-{user}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _offline_svg_path(
    *key: str,
    color: str | None = None,
    height: str | int | None = None,
    width: str | int | None = None,
    flip: str | None = None,
    rotate: str | int | None = None,
    box: bool | None = None,
    dir: str | Path | None = None,  # pyconify's own keyword
) -> Path:
    """Offline ``pyconify.svg_path``: the SVG rendered from the shipped subset."""
    svg = _offline_svg(
        *key, color=color, height=height, width=width, flip=flip, rotate=rotate, box=box
    )
    folder = Path(dir) if dir is not None else _cache_folder()
    digest = hashlib.sha1(svg).hexdigest()[:16]  # a file name, not security
    path = folder / f"{'-'.join(key).replace(':', '-')}-{digest}.svg"
    if not path.is_file():
        path.write_bytes(svg)
    return path


def _offline_svg(
    *key: str,
    color: str | None = None,
    height: str | int | None = None,
    width: str | int | None = None,
    flip: str | None = None,
    rotate: str | int | None = None,
    box: bool | None = None,
) -> bytes:
    """Offline ``pyconify.svg``: an icon the subset lacks is drawn empty, and noted."""
    prefix, name = key[0].split(":", 1) if len(key) == 1 else (key[0], key[1])
    try:
        return render_svg(
            load_subset(),
            prefix,
            name,
            color=color,
            height=height,
            width=width,
            flip=flip,
            rotate=rotate,
            box=box,
        )
    except UnknownIcon:
        MISSING.add(f"{prefix}:{name}")
        return (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="1em" height="1em" '
            b'viewBox="0 0 24 24"></svg>'
        )


MISSING: set[str] = set()
"""Icons asked for that the subset lacks (drawn empty)."""


def install() -> None:
    """Route pyconify (and so superqt and pymmcore-widgets) to the subset.

    Call before pymmcore-widgets or ``superqt.iconify`` are imported: they
    bind ``pyconify.svg_path`` at import. Idempotent.
    """
    import pyconify
    import pyconify.api

    for module in (pyconify, pyconify.api):
        setattr(module, "svg_path", _offline_svg_path)  # noqa: B010
        setattr(module, "svg", _offline_svg)  # noqa: B010
    # modules that bound pyconify's function before this call
    for name in ("superqt.iconify", "pymmcore_widgets.control._stage_widget"):
        bound = sys.modules.get(name)
        if bound is not None and hasattr(bound, "svg_path"):
            setattr(bound, "svg_path", _offline_svg_path)  # noqa: B010


def widget_icon_keys() -> set[str]:
    """Every ``prefix:name`` literal in the installed pymmcore-widgets and superqt.

    The icons those packages can ask for by name (a set of the Iconify
    prefixes found in the subset tools below; other ``a:b`` strings are
    dropped by `collect_subset` when no set holds them).
    """
    import pymmcore_widgets
    import superqt

    keys: set[str] = set()
    for package in (pymmcore_widgets, superqt):
        root = Path(str(package.__file__)).parent
        for source in root.rglob("*.py"):
            keys.update(f"{p}:{n}" for p, n in _KEY.findall(source.read_text("utf-8")))
    return keys


def collect_subset(tarballs: list[Path], keys: set[str]) -> dict[str, Any]:
    """Reduce ``@iconify-json/*`` npm tarballs to the icons in ``keys``."""
    sets: dict[str, dict[str, Any]] = {}
    for tarball in tarballs:
        with tarfile.open(tarball) as archive:
            icons = json.load(archive.extractfile("package/icons.json"))  # type: ignore[arg-type]
            info = json.load(archive.extractfile("package/info.json"))  # type: ignore[arg-type]
        prefix = icons["prefix"]
        wanted = {k.split(":", 1)[1] for k in keys if k.split(":", 1)[0] == prefix}
        chosen: dict[str, Any] = {}
        aliases: dict[str, Any] = {}
        for name in sorted(wanted):
            while name in icons.get("aliases", {}) and name not in aliases:
                aliases[name] = icons["aliases"][name]
                name = aliases[name]["parent"]
            if name in icons["icons"]:
                chosen[name] = icons["icons"][name]
        if not chosen:
            continue
        sets[prefix] = {
            "width": icons.get("width", _DEFAULT_SIZE),
            "height": icons.get("height", _DEFAULT_SIZE),
            "icons": chosen,
            "aliases": aliases,
            "name": info.get("name", prefix),
            "version": info.get("version", ""),
            "author": info.get("author", {}),
            "license": info.get("license", {}),
        }
    return {
        "source": "Iconify icon sets (npm @iconify-json/*), reduced to the icons "
        "pymmcore-widgets and superqt name; each set keeps its licence",
        "sets": sets,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m acquire.gui.offline_icons OUT.json TARBALL...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(__doc__)
        return 2
    out, tarballs = Path(args[0]), [Path(a) for a in args[1:]]
    subset = collect_subset(tarballs, widget_icon_keys())
    out.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    count = sum(len(s["icons"]) + len(s["aliases"]) for s in subset["sets"].values())
    print(f"wrote {out}: {count} icons from {len(subset['sets'])} sets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
