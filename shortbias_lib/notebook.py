"""What every chapter does first: check its parameters and say what produced it."""

import re
from dataclasses import dataclass

from .profiles import check_profile
from .report import markdown
from .runs import check_seed, resolve_device, results_dir


@dataclass(frozen=True)
class Context:
    """A chapter's run settings, after validation."""

    profile: str
    device: object
    seed: int
    data_root: object
    results_dir: object
    threads: int  # the CPU threads torch uses from here on


def setup(profile, device="auto", seed=0, data_root=None, results=None, show=True, threads=None):
    """Validate a chapter's papermill parameters, seed torch, cap its CPU threads at ``threads``
    (``None``: torch's default), set the book's figure style (``plotting.use_book_style``), and
    show a banner.

    Small networks gain little from more threads, and on a shared machine spinning threads can
    make them several times slower, so most chapters pass 1. The banner names the profile and
    device, so every executed notebook and every HTML page says what produced it.
    """
    import torch

    from .plots.common import use_book_style

    check_profile(profile)
    seed = check_seed(seed)
    use_book_style()  # legible figures: a drawing with text below 9 pt as shown warns on stderr
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(min(threads, torch.get_num_threads()))
    context = Context(profile, resolve_device(device), seed, data_root, results_dir(results),
                      torch.get_num_threads())
    if show:
        from IPython.display import display

        display(markdown(banner(profile, context.device, seed)))
    return context


def banner(profile, device, seed):
    """The Markdown note :func:`setup` shows at the top of a chapter: profile, device and seed."""
    return (f"```{{note}}\nThis page was executed with the **`{profile}`** profile on "
            f"**{device}** (seed {seed}). See the introduction for how to "
            "rerun it with another profile.\n```")


def show_source(fn, title):
    """Show ``fn``'s source in a collapsed dropdown titled ``title``, next to the equation it
    implements, so a reader is one click from the code behind each numbered equation."""
    import inspect

    from IPython.display import display

    display(markdown(source_dropdown(inspect.getsource(fn), title)))


def source_dropdown(code, title):
    """The MyST of :func:`show_source`: a dropdown admonition titled ``title`` holding ``code``.

    A colon fence (``:::``), not a backtick one: CommonMark forbids backticks in the info
    string of a backtick fence, so a title such as ``Source: `hypergrad.smd``` made the
    whole directive raw text on the page. Each fence is longer than any run of its character
    in the code, so no line of the code can close it early."""
    if "\n" in title:
        raise ValueError(f"a dropdown title is one line: {title!r}")
    longest = max((len(run) for run in re.findall("`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    colons = ":" * max(3, 1 + max((len(run) for run in re.findall("(?m)^[ \t]*(:+)", code)), default=0))
    return (f"{colons}{{admonition}} {title}\n:class: dropdown\n{fence}python\n{code.rstrip()}\n"
            f"{fence}\n{colons}")


def glue_facts(facts):
    """Glue every entry of ``facts`` (a mapping of name to value, as a chapter section's
    facts function returns it) for the prose to quote, without displaying it: one call per
    section instead of one ``glue`` per number."""
    from myst_nb import glue

    for name, value in facts.items():
        glue(name, value, display=False)
