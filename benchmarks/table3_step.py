"""The paper's Table III on this machine: wall time of a MutualNet training step
(MutualLearningHook's cohort: full, min and 2 random widths, views made from the
batch) against a plain step of the same network, on a real mmengine Runner.

    python benchmarks/table3_step.py --out results.json [--device cuda]
        [--archs mbv1 r50] [--batches 64 128] [--size 224] [--iters 60] [--warmup 10]

MobileNetV1 [0.25, 1] and ResNet-50 [0.7, 1] image classifiers (1000 classes) at
``--size`` px; on cuda with channels-last, bf16 autocast (AmpOptimWrapper) and
cudnn.benchmark. Before the timed run every width of the grid is run once at every
resolution (so cudnn's benchmarking is not timed), then the first ``--warmup``
iterations are dropped. Per iteration the cohort's FLOPs (the project's FLOPs of
each member's width and resolution) give the FLOPs-expected ratio. Needs only the
core (torch, mmengine, mmcv-lite): ResNet-50 is defined here, in torchvision's
layout, as any backbone made slimmable with SlimBackboneMixin."""
import argparse
import functools
import json
import statistics
import tempfile
import time

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModule
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn

import mutual_mm  # noqa: F401
from mutual_mm.deploy import measure_complexity
from mutual_mm.models import SlimBackboneMixin
from mutual_mm.ops import WidthGrid
from mutual_mm.registry import DATASETS, HOOKS, MODELS

SCALES = (224, 192, 160, 128)  # the paper's ImageNet resolutions, scaled to --size
MEMBERS = ('full', 'min', 'rand0', 'rand1')
WIDTH_STEP = 0.05  # the hook's grid (the widths cudnn meets)


def bottleneck(cin, mid, stride):
    """torchvision's Bottleneck (stride on the 3x3), as a module tree with its names."""
    block = nn.Module()
    block.conv1, block.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
    block.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
    block.bn2 = nn.BatchNorm2d(mid)
    block.conv3, block.bn3 = nn.Conv2d(mid, mid * 4, 1, bias=False), nn.BatchNorm2d(mid * 4)
    block.downsample = None
    if stride != 1 or cin != mid * 4:
        block.downsample = nn.Sequential(nn.Conv2d(cin, mid * 4, 1, stride, bias=False),
                                         nn.BatchNorm2d(mid * 4))
    return block


def run_bottleneck(block, x):
    out = torch.relu(block.bn1(block.conv1(x)))
    out = torch.relu(block.bn2(block.conv2(out)))
    out = block.bn3(block.conv3(out))
    return torch.relu(out + (x if block.downsample is None else block.downsample(x)))


@MODELS.register_module()
class BenchResNet50(SlimBackboneMixin, BaseModule):
    """ResNet-50 (torchvision/mmdet state-dict names), slimmable; output: stage 4."""
    full_out_channels = (2048,)

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        cin = 64
        for i, (mid, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            layer = [bottleneck(cin if j == 0 else mid * 4, mid, 2 if i and not j else 1)
                     for j in range(blocks)]
            setattr(self, f'layer{i + 1}', nn.ModuleList(layer))
            cin = mid * 4
        self.make_slim()

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            for block in getattr(self, f'layer{i}'):
                x = run_bottleneck(block, x)
        return (x, )


ARCHS = {'mbv1': (dict(type='SlimMobileNetV1', out_indices=(4, )), 1024, (0.25, 1.0)),
         'r50': (dict(type='BenchResNet50'), 2048, (0.7, 1.0))}


@DATASETS.register_module()
class RandomImages(torch.utils.data.Dataset):
    """Fixed random uint8 images, packed as PackClsInputs packs them (no decoding:
    the step is timed, not the data)."""

    def __init__(self, num, size):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (num, 3, size, size), dtype=torch.uint8,
                                    generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        sample = BaseDataElement(gt_label=torch.tensor([i % 1000]))
        return dict(inputs=self.images[i], data_samples=sample)


@HOOKS.register_module()
class StepTimer(Hook):
    """Times every training iteration (synchronizing the device) and records its
    cohort; on cuda, before training, runs every width x resolution once (so that
    cudnn.benchmark's trials are not timed)."""
    priority = 'VERY_LOW'

    def __init__(self, widths, scales, batch, channels_last):
        self.widths, self.scales, self.batch = widths, scales, batch
        self.channels_last = channels_last
        self.times, self.cohorts = [], []

    def before_train(self, runner):
        model = runner.model
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        device = next(model.parameters()).device
        wrapper = runner.optim_wrapper
        for width in self.widths if device.type == 'cuda' else ():
            model.backbone.set_width(width)
            for s in self.scales:
                x = torch.randn(self.batch, 3, s, s, device=device)
                with wrapper.optim_context(model):
                    model.head(model.backbone(x)).float().sum().backward()
        model.backbone.set_width(max(self.widths))
        model.zero_grad(set_to_none=True)
        self._sync(device)
        self.last = time.perf_counter()

    @staticmethod
    def _sync(device):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._sync(next(runner.model.parameters()).device)
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        scalars = runner.message_hub.log_scalars
        self.cohorts.append([(scalars[f'train/{m}.width'].current(),
                              scalars[f'train/{m}.res'].current())
                             for m in MEMBERS if f'train/{m}.width' in scalars])


def config(arch, batch, size, iters, device, hooked, work_dir):
    backbone, channels, width_range = ARCHS[arch]
    scales = [round(size * s / 224) for s in SCALES]
    widths = list(WidthGrid(width_range, WIDTH_STEP).widths) if hooked else [1.0]
    cuda = device == 'cuda'
    hooks = [dict(type='StepTimer', widths=widths, scales=scales if hooked else scales[:1],
                  batch=batch, channels_last=cuda)]
    if hooked:
        hooks.append(dict(type='MutualLearningHook', width_range=width_range, num_random=2,
                          width_step=WIDTH_STEP,
                          distill='kl', batch_views=dict(scales=scales)))
    sgd = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
    return dict(
        model=dict(type='MutualImageClassifier', backbone=backbone,
                   data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675] * 3,
                                          std=[58.395] * 3),
                   head=dict(type='MutualLinearClsHead', num_classes=1000,
                             in_channels=channels)),
        work_dir=work_dir, default_scope='mmengine', custom_hooks=hooks,
        train_dataloader=dict(batch_size=batch, num_workers=4 if cuda else 0,
                              dataset=dict(type='RandomImages', num=2 * batch, size=size),
                              sampler=dict(type='InfiniteSampler', shuffle=False)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters),
        optim_wrapper=(dict(type='AmpOptimWrapper', dtype='bfloat16', optimizer=sgd)
                       if cuda else dict(optimizer=sgd)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=10**6)),
        env_cfg=dict(cudnn_benchmark=cuda), log_level='WARNING',
        randomness=dict(seed=0), visualizer=dict(type='Visualizer', vis_backends=[]))


def measure(arch, batch, args, hooked):
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner.from_cfg(config(arch, batch, args.size, args.iters + args.warmup,
                                        args.device, hooked, work_dir))
        runner.train()
    timer = next(h for h in runner.hooks if isinstance(h, StepTimer))
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == 'cuda' else None
    return runner.model, timer.times[args.warmup:], timer.cohorts[args.warmup:], peak


FLOPS = {}  # (arch, width, size) -> FLOPs of one image: weights do not change them


def flops_of(model, arch, width, size):
    if (arch, width, size) in FLOPS:
        return FLOPS[arch, width, size]
    model.backbone.set_width(width)
    batch = dict(inputs=[torch.zeros(3, size, size, dtype=torch.uint8)],
                 data_samples=[BaseDataElement(gt_label=torch.tensor([0]))])
    FLOPS[arch, width, size] = measure_complexity(model, batch)[0]
    return FLOPS[arch, width, size]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument('--batches', nargs='+', type=int, default=[64, 128])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=10)
    args = parser.parse_args()
    results = dict(device=torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu',
                   torch=torch.__version__, size=args.size, iters=args.iters,
                   warmup=args.warmup, runs=[])
    for arch in args.archs:
        for batch in args.batches:
            _, plain, _, plain_peak = measure(arch, batch, args, hooked=False)
            model, hooked, cohorts, hooked_peak = measure(arch, batch, args, hooked=True)
            model = model.float().to(memory_format=torch.contiguous_format).cpu().eval()
            flops = functools.partial(flops_of, model, arch)
            expected = statistics.mean(sum(flops(w, int(r)) for w, r in cohort)
                                       for cohort in cohorts) / flops(1.0, args.size)
            run = dict(arch=arch, batch=batch, plain_s=statistics.median(plain),
                       hooked_s=statistics.median(hooked), flops_expected=expected,
                       plain_peak_mib=plain_peak, hooked_peak_mib=hooked_peak)
            run['hooked_over_plain'] = run['hooked_s'] / run['plain_s']
            results['runs'].append(run)
            print(json.dumps(run), flush=True)
            with open(args.out, 'w') as f:  # each finished run is kept
                json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
