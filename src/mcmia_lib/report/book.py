"""Book glue: values and findings recorded for the prose and the front page (myst-nb ``glue``), and
showing whole tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .verdicts import VERDICTS, display_claims


def glue(name: str, value, display: bool = False) -> None:
    """Record ``value`` for ``{glue:text}`name``` in the chapter's prose (myst-nb)."""
    from myst_nb import glue as _glue
    _glue(name, value.item() if isinstance(value, np.generic) else value, display=display)


def claim_key(claim: str) -> str:
    """The glue key of one claim's verdict: ``verdict_`` and the claim's words in lower case joined by ``_`` (a
    key the ``{glue:md}`doc::key``` role of another page can name: no colon, no space)."""
    import re
    return "verdict_" + re.sub(r"[^a-z0-9]+", "_", claim.lower()).strip("_")


def publish_findings(*tables: pd.DataFrame, chapter: str) -> pd.DataFrame:
    """Glue a chapter's decided claims (``claim_table`` results) for the front page (``findings``: claim, the
    paper's effect, ours with its interval, the verdict and its note: the reason, matched utility, the seeds a
    decision needs), for the chapter's result box (``summary``: how many claims got which verdict) and one by
    one for the comparison chapter (``claim_key``: the verdict and ours with its interval). Returns the findings
    table."""
    from collections import Counter
    from IPython.display import Markdown
    shown = pd.concat([display_claims(t) for t in tables])[["paper", "ours (interval, level)", "unit", "verdict",
                                                            "note"]]
    counts = Counter(v for t in tables for v in t["verdict"])
    words = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: VERDICTS.index(kv[0])))
    glue("findings", shown.rename_axis(f"{chapter}: claim"), display=False)
    for claim, row in shown.iterrows():
        glue(claim_key(claim), Markdown(f"{row['verdict']}, {row['ours (interval, level)']}"), display=False)
    glue("summary", Markdown(
        f"**{sum(counts.values())} claim(s) of the paper decided here: {words}.** Each verdict compares our paired "
        "per-seed difference and its interval with the paper's effect (rule on the methods page); the tables "
        "below give every number."), display=False)
    return shown


def publish_untested(chapter: str, why: str) -> None:
    """``publish_findings`` for a chapter whose profile decides no claim (``why`` says what is missing)."""
    from IPython.display import Markdown
    glue("findings", pd.DataFrame({"verdict": ["not tested at this profile"], "why": [why]},
                                  index=pd.Index([chapter], name=f"{chapter}: claim")), display=False)
    glue("summary", Markdown(f"**No claim is decided at this profile:** {why}"), display=False)


def show_whole(df: pd.DataFrame) -> None:
    """Display ``df`` whole: no long text cell (a verdict's reason) cut to pandas' 50 characters, no row
    elided past pandas' 60 (the strong-attacks chapter's attack table has 72)."""
    from IPython.display import display
    with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
        display(df)
