"""MkDocs hooks: the pages read well on GitHub and on the site, and figures stay in benchmarks/.

`benchmarks/RESULTS.md` keeps every measurement with its command and pictures beside it; the
Results page includes it (pymdownx.snippets), so its pictures must be in the site too. The pages
link `../benchmarks/RESULTS.md` and `../benchmarks/NAME.png`, which GitHub follows from `docs/`;
in the site those become `results.md` and `NAME.png`, files this hook adds from `benchmarks/`.
MkDocs then checks these links like any other (`--strict` fails on a missing one).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# `](../benchmarks/RESULTS.md#anchor)` -> `](results.md#anchor)`
_RESULTS_LINK = re.compile(r"\]\(\.\./benchmarks/RESULTS\.md")
# `](../benchmarks/x.png)` -> `](x.png)`
_FIGURE_LINK = re.compile(r"\]\(\.\./benchmarks/([\w.-]+\.png)\)")


def on_files(files: Files, config: Any) -> Files:
    """Add every picture of `benchmarks/` to the site's root, beside the Results page."""
    for picture in sorted(BENCHMARKS.glob("*.png")):
        files.append(
            File(
                picture.name,
                src_dir=str(BENCHMARKS),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Point a page's links into `benchmarks/` at their copies in the site."""
    markdown = _RESULTS_LINK.sub("](results.md", markdown)
    return _FIGURE_LINK.sub(r"](\1)", markdown)
