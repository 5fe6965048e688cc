"""MCMIA tables (notebooks/mcmia_tables.ipynb): 000's and 001's tables from the store entries of the LeNet-5 and
CIFAR-10 chapters at the same profile; it has no parameter but the profile."""
from __future__ import annotations

from dataclasses import dataclass

from . import ChapterParams, Profile, plain


@dataclass(frozen=True)
class Params(ChapterParams):
    """The tables chapter's parameters: the profile whose store entries it reads."""

    profile: Profile = plain()


def stages(p: Params, store=None):
    """One stage: the entries of the LeNet-5 and CIFAR-10 chapters at the same profile."""
    from ..experiments import mcmia_specs
    from . import as_dict, read
    yield [s for specs in mcmia_specs(as_dict(read("mcmia_lenet5", p.profile)),
                                      as_dict(read("mcmia_cifar10", p.profile))).values() for s in specs]
