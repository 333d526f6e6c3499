"""The Fashion-MNIST study: which runs exist and how each differs from the base recipe.

A run is one training (MutualNet, US-Net, an independent network or a plain
unhooked network) and its evaluation, named after what makes it differ (so a later
invocation finds its result file). Groups (``--plan``): ``trend``: MutualNet,
US-Net and I-Nets at the three I-Net points, seed 0, at every budget of
:data:`BUDGETS`; ``seeds``: MutualNet and US-Net at seeds 1 and 2 at
:data:`SEED_BUDGET`; ``ablations``: the cheapest runs that separate the
explanations of the gap (docs/replication.md): plumbing (the hook at width (1, 1)
vs no hook), the cohort one member kind at a time, ground truth instead of KL,
the official learning rate per sample without warm-up, the official small-image
width range [0.9, 1.0], and the calibration set size.
"""
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Tuple

STEPS_PER_EPOCH = 60000 / 64
# 0.64 epoch (the first measurement), 3 epochs, 10 epochs of batch 64
BUDGETS = (600, 2812, 9375)
SEED_BUDGET = 2812
ABLATION_BUDGET = 2812
SEEDS = (1, 2)
# I-Net points spanning the FLOPs range: (width, resolution)
INET_POINTS = ((1.0, 32), (0.5, 24), (0.25, 20))
RESOLUTIONS = (32, 28, 24, 20)
EVAL_WIDTHS = (0.25, 0.5, 0.75, 1.0)
# calibration-set sizes (training batches of 64) compared on one trained model
CALIBRATION_SIZES = (1, 3, 10, 40)
METHODS = ('mutualnet', 'usnet', 'inet', 'plain')


@dataclass(frozen=True)
class RunSpec:
    """One training run and what is evaluated after it.

    Attributes:
        method: ``'mutualnet'`` (widths x resolutions, KL), ``'usnet'`` (widths at
            the full resolution, KL), ``'inet'`` (one configuration trained alone
            under the hook at ``width_range=(w, w)``), ``'plain'`` (the same
            network and data without the hook: the stock train step).
        iters: optimizer steps of batch ``batch_size`` (the budget).
        point: (width, resolution) of an I-Net / plain run.
        width_range, num_random, distill, stage_widths: the hook's arguments
            (``stage_widths``: the random members draw one width per stage).
        lr, warmup: peak learning rate; whether a linear warm-up over the first
            5 % of the steps precedes the cosine decay.
        calibration_sizes: evaluate these calibration-set sizes too (at the
            I-Net points), besides the default.
        group: which plan group first asked for it (for the report).
    """
    method: str
    iters: int
    seed: int = 0
    point: Optional[Tuple[float, int]] = None
    width_range: Tuple[float, float] = (0.25, 1.0)
    num_random: int = 2
    distill: str = 'kl'
    stage_widths: bool = False
    lr: float = 0.1
    warmup: bool = True
    batch_size: int = 64
    calibration_sizes: Tuple[int, ...] = ()
    group: str = field(default='trend', compare=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f'RunSpec: method={self.method!r}; valid: {METHODS}')
        if (self.point is None) != (self.method in ('mutualnet', 'usnet')):
            raise ValueError(f'RunSpec: {self.method} runs take point=(width, res) '
                             'exactly when they are I-Net or plain runs')

    @property
    def name(self) -> str:
        """File-safe and unique: the method, what differs from the base recipe,
        the budget and the seed."""
        parts = [self.method]
        if self.point is not None:
            parts.append(f'w{self.point[0]:g}-r{self.point[1]}')
        if self.method in ('mutualnet', 'usnet'):
            if tuple(self.width_range) != (0.25, 1.0):
                parts.append(f'range{self.width_range[0]:g}-{self.width_range[1]:g}')
            if self.num_random != 2:
                parts.append(f'rand{self.num_random}')
            if self.distill != 'kl':
                parts.append(self.distill)
            if self.stage_widths:
                parts.append('stages')
        if self.lr != 0.1:
            parts.append(f'lr{self.lr:g}')
        if not self.warmup:
            parts.append('nowarmup')
        if self.batch_size != 64:
            parts.append(f'b{self.batch_size}')
        parts += [f'i{self.iters}', f's{self.seed}']
        return '_'.join(parts)

    @property
    def epochs(self) -> float:
        return self.iters * self.batch_size / 60000

    def evaluated_configs(self) -> List[Tuple[float, int]]:
        if self.point is not None:
            return [tuple(self.point)]
        # only trained widths (the [0.9, 1.0] ablation: its two ends)
        low, high = self.width_range
        widths = sorted({w for w in EVAL_WIDTHS if low <= w <= high} | {low, high})
        return [(w, r) for w in widths for r in RESOLUTIONS]

    def as_dict(self) -> Dict:
        d = asdict(self)
        d['name'] = self.name
        return d


def trend_runs() -> List[RunSpec]:
    runs = []
    for iters in BUDGETS:
        runs += [RunSpec('mutualnet', iters), RunSpec('usnet', iters)]
        runs += [RunSpec('inet', iters, point=p) for p in INET_POINTS]
    return runs


def seed_runs() -> List[RunSpec]:
    return [RunSpec(m, SEED_BUDGET, seed=s, group='seeds')
            for s in SEEDS for m in ('mutualnet', 'usnet')]


def ablation_runs() -> List[RunSpec]:
    it = ABLATION_BUDGET
    full = (1.0, 32)
    mutual = RunSpec('mutualnet', it, group='ablations')
    return [
        # plumbing: the hook at width (1, 1) without random members is the stock step
        RunSpec('plain', 600, point=full, group='ablations'),
        # the cohort's cost to the full network, one member kind at a time:
        # full only = I-Net 1x-32 (trend); + the smallest; + 2 random (= MutualNet)
        replace(mutual, num_random=0),
        # sub-networks learn the ground truth instead of the full network's output
        replace(mutual, distill='gt'),
        # the official recipes' learning rate per sample (0.1 per 128), no warm-up,
        # for MutualNet and for the I-Net it is compared with
        replace(mutual, lr=0.05, warmup=False),
        RunSpec('inet', it, point=full, lr=0.05, warmup=False, group='ablations'),
        # the official small-image width range: "boost a single network"
        replace(mutual, width_range=(0.9, 1.0)),
        # calibration set size, on the trend's MutualNet model at this budget
        replace(mutual, calibration_sizes=CALIBRATION_SIZES),
    ]


#: the search study (docs/search.md): uniform vs per-stage sampling, two seeds,
#: at the first budget of the trend (trained on the first SEARCH_TRAIN_SAMPLES
#: images; the rest is the search's held-out split)
SEARCH_BUDGET = 600
SEARCH_SEEDS = (0, 1)
SEARCH_TRAIN_SAMPLES = 55000


#: why per-stage sampling costs the uniform subnets at SEARCH_BUDGET: the same
#: pair trained twice as long, seed 0 (trained and tabulated, not searched)
SEARCH_LONGER_BUDGET = 1200


def search_runs() -> List[RunSpec]:
    return [RunSpec('mutualnet', SEARCH_BUDGET, seed=s, stage_widths=stages, group='search')
            for s in SEARCH_SEEDS for stages in (False, True)]


def search_budget_runs() -> List[RunSpec]:
    return [RunSpec('mutualnet', SEARCH_LONGER_BUDGET, seed=0, stage_widths=stages,
                    group='search') for stages in (False, True)]


PLANS = dict(trend=trend_runs, seeds=seed_runs, ablations=ablation_runs)


def plan_runs(groups) -> List[RunSpec]:
    """The runs of ``groups`` in a useful order (cheapest information first: the
    short budget, then at the seed budget the trend, the seeds and the
    ablations, then the longest budget), each once; a run asked for by several groups keeps the
    first group's name and merges the evaluation it needs."""
    unknown = [g for g in groups if g not in PLANS]
    if unknown:
        raise ValueError(f'unknown plan group(s) {unknown}; valid: {sorted(PLANS)}')
    runs: Dict[str, RunSpec] = {}
    for group in groups:
        for run in PLANS[group]():
            key = replace(run, calibration_sizes=()).name
            if key in runs:
                merged = sorted(set(runs[key].calibration_sizes) | set(run.calibration_sizes))
                runs[key] = replace(runs[key], calibration_sizes=tuple(merged))
            else:
                runs[key] = run
    order = {group: k for k, group in enumerate(('trend', 'seeds', 'ablations', 'search'))}
    return sorted(runs.values(), key=lambda r: (r.iters > ABLATION_BUDGET, r.iters,
                                                order[r.group], r.seed))
