"""Stage widths (one width per backbone stage) on every slim backbone family:
the stages each family defines, equivalence with the static network of the
sliced weights, the coupled layers (residual sums, FPN inputs, SlowFast's Fast
pathway), the errors, the deploy path and the training option."""
import copy
import dataclasses
import random

import pytest
import torch
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet
from mutual_mm.engine.trained_space import TrainedSpace, check_trained
from mutual_mm.models import SlimVGG
from mutual_mm.ops import WidthGrid, active_channels, export_static, width_str

from .helpers import needs, randomize_bn

GRID = WidthGrid((0.25, 1.0), step=0.25)


def _outputs(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out, )


# --------------------------------------------------------- the families
def _slowfast(**kwargs):
    from mutual_mm.models import SlimResNet3dSlowFast
    slow = dict(type='resnet3d', depth=50, pretrained=None, lateral=True, base_channels=16,
                conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1), conv1_stride_t=1,
                pool1_stride_t=1, inflate=(0, 0, 1, 1))
    fast = dict(type='resnet3d', depth=50, pretrained=None, lateral=False, base_channels=2,
                conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1)
    return SlimResNet3dSlowFast(slow_pathway=slow, fast_pathway=fast, **kwargs)


def _build(name):
    """(backbone, input, the module producing each output (None: never slims))."""
    if name == 'vgg11':
        model = SlimVGG(depth=11, out_indices=(1, 2, 3, 4))
        return model, torch.randn(1, 3, 32, 32), [model.width_stages()[f'stage{i}'][-1]
                                                  for i in (1, 2, 3, 4)]
    if name.startswith('resnet'):
        from mutual_mm.models import SlimResNet
        depth = int(name[len('resnet'):].split('_')[0])
        model = SlimResNet(depth=depth, base_channels=16, stem_channels=16,
                           deep_stem=name.endswith('deep'))
        return model, torch.randn(1, 3, 32, 32), list(model.res_layers)
    if name.startswith('mobilenet_v2'):
        from mutual_mm.models import SlimMobileNetV2
        widen = 0.25 if name.endswith('0.25') else 0.5
        model = SlimMobileNetV2(widen_factor=widen, out_indices=(1, 2, 4, 7))
        return model, torch.randn(1, 3, 32, 32), [model.layers[i] for i in (1, 2, 4, 7)]
    if name == 'action_resnet18':
        from mutual_mm.models import SlimActionResNet
        model = SlimActionResNet(depth=18, pretrained=None, out_indices=(2, 3))
        return model, torch.randn(1, 3, 32, 32), ['layer3', 'layer4']
    if name == 'slowonly50':
        from mutual_mm.models import SlimResNet3dSlowOnly
        model = SlimResNet3dSlowOnly(depth=50, pretrained=None, lateral=False,
                                     base_channels=16)
        return model, torch.randn(1, 3, 2, 32, 32), ['layer4']
    if name == 'x3d':
        from mutual_mm.models import SlimX3D
        model = SlimX3D(gamma_w=1, gamma_b=2.25, gamma_d=0.5)
        return model, torch.randn(1, 3, 2, 32, 32), ['conv5']
    if name == 'slowfast':
        model = _slowfast()
        return model, torch.randn(1, 3, 16, 32, 32), ['slow_path.layer4', None]
    raise KeyError(name)


# (name, extra, its stages)
FAMILIES = [
    ('vgg11', None, ['stage0', 'stage1', 'stage2', 'stage3', 'stage4']),
    ('resnet50', 'mmdet', ['stem', 'layer1', 'layer2', 'layer3', 'layer4']),
    ('resnet18', 'mmdet', ['stem+layer1', 'layer2', 'layer3', 'layer4']),
    ('resnet18_deep', 'mmdet', ['stem+layer1', 'layer2', 'layer3', 'layer4']),
    ('mobilenet_v2', 'mmdet', ['stem'] + [f'layer{i}' for i in range(1, 8)] + ['conv2']),
    # at widen_factor 0.25 the stem and layer1 both round to 8 channels: layer1's
    # first block adds the stem's output, so they are one stage
    ('mobilenet_v2_0.25', 'mmdet',
     ['stem+layer1'] + [f'layer{i}' for i in range(2, 8)] + ['conv2']),
    ('action_resnet18', 'mmaction', ['stem+layer1', 'layer2', 'layer3', 'layer4']),
    ('slowonly50', 'mmaction', ['stem', 'layer1', 'layer2', 'layer3', 'layer4']),
    ('x3d', 'mmaction', ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'conv5']),
    ('slowfast', 'mmaction', ['stem', 'layer1', 'layer2', 'layer3', 'layer4']),
]
FAMILY_PARAMS = [pytest.param(name, stages, id=name, marks=needs(extra) if extra else ())
                 for name, extra, stages in FAMILIES]


def _stage_of(model, module_name):
    """The stage holding ``module_name``."""
    for stage, modules in model.width_stages().items():
        if any(module_name == m or module_name.startswith(m + '.') for m in modules):
            return stage
    raise KeyError(module_name)


def _random_stage_widths(n, seed):
    rng = random.Random(seed)
    while True:  # a draw whose widths differ (equal ones are the uniform width)
        widths = tuple(rng.choice(GRID.widths) for _ in range(n))
        if len(set(widths)) > 1:
            return widths


@pytest.mark.parametrize('name, stages', FAMILY_PARAMS)
def test_stages_equal_the_static_network_and_name_each_output(name, stages):
    torch.manual_seed(0)
    model, x, producers = _build(name)
    randomize_bn(model)
    model.eval()
    assert list(model.width_stages()) == stages
    for seed in (0, 1):
        widths = _random_stage_widths(len(stages), seed)
        model.set_width(widths)
        assert model.width == widths
        static = export_static(model, x)
        with torch.no_grad():
            got, want = _outputs(model(x)), _outputs(static(x))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # each output has the channels of the stage producing it
        by_stage = dict(zip(stages, widths))
        full = model.full_out_channels
        for out, producer, channels in zip(got, producers, full):
            want_c = channels if producer is None else \
                active_channels(channels, by_stage[_stage_of(model, producer)])
            assert out.shape[1] == want_c, (name, producer, widths)


@pytest.mark.parametrize('name, stages', FAMILY_PARAMS)
def test_uniform_stage_widths_are_the_uniform_width(name, stages):
    torch.manual_seed(0)
    model, x, _ = _build(name)
    randomize_bn(model)
    model.eval()
    model.set_width(0.5)
    with torch.no_grad():
        uniform = _outputs(model(x))
    model.set_width((1.0, ) * len(stages))
    model.set_width((0.5, ) * len(stages))
    assert model.width == 0.5  # one name for the uniform subnet
    with torch.no_grad():
        staged = _outputs(model(x))
    assert all(torch.equal(a, b) for a, b in zip(uniform, staged))
    assert tuple(o.shape[1] for o in uniform) == model.out_channels_at(0.5)


@pytest.mark.parametrize('name, stages', FAMILY_PARAMS)
def test_a_wrong_number_of_stage_widths_names_the_stages(name, stages):
    model, _, _ = _build(name)
    with pytest.raises(ValueError, match=rf'{len(stages) + 1} stage widths .* for its '
                       rf'{len(stages)} stages \({", ".join(stages)}\)'.replace('+', r'\+')):
        model.set_width((0.5, 1.0) + (0.75, ) * (len(stages) - 1))


def test_a_backbone_without_stages_names_itself():
    class StagelessVGG(SlimVGG):
        def width_stages(self):
            return {}

    model = StagelessVGG(depth=11)
    model.set_width(0.5)  # one width for all still runs
    with pytest.raises(ValueError, match='StagelessVGG defines no stages'):
        model.set_width((0.5, 1.0, 1.0, 1.0, 1.0))


@needs('mmdet')
def test_a_stage_is_every_module_of_its_blocks():
    """The residual sums lie in one stage: a block's branch and its shortcut
    are both in its stage (so they slim alike)."""
    from mutual_mm.models import SlimResNet
    from mutual_mm.ops import SlimMixin
    model = SlimResNet(depth=50, base_channels=16, stem_channels=16)
    model.set_width((1.0, 0.25, 0.5, 0.75, 1.0))
    for i, layer in enumerate(model.res_layers):
        width = model.width[i + 1]
        for block in getattr(model, layer):
            for name in ('conv3', 'downsample.0'):
                if name == 'downsample.0' and block.downsample is None:
                    continue
                conv = block.get_submodule(name)
                assert isinstance(conv, SlimMixin) and conv.width == width


# ------------------------------------------------------ the coupled layers
@needs('mmdet')
def test_mask_rcnn_fpn_reads_the_stage_widths_outputs():
    from .helpers import det_packed_inputs, loss_of
    from .test_backbones_2d import _mask_rcnn
    model = _mask_rcnn('SlimResNet')
    model.train()
    widths = (0.5, 0.25, 0.75, 1.0, 0.5)
    mutual_mm.set_model_width(model, widths)
    assert mutual_mm.get_model_width(model) == widths
    torch.manual_seed(3)
    _, total = loss_of(model, det_packed_inputs())
    assert torch.isfinite(total)
    total.backward()
    for lateral, width in zip(model.neck.lateral_convs, widths[1:]):
        grad = lateral.conv.weight.grad
        used = active_channels(lateral.conv.in_channels, width)
        assert grad[:, :used].abs().sum() > 0
        assert grad[:, used:].abs().sum() == 0


@needs('mmaction')
def test_slowfast_fast_pathway_is_unchanged_by_slow_stage_widths():
    torch.manual_seed(0)
    model = _slowfast()
    randomize_bn(model)
    model.eval()
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        slow_full, fast_full = model(x)
        model.set_width((0.25, 1.0, 0.5, 0.75, 0.5))
        slow, fast = model(x)
    assert torch.equal(fast, fast_full)
    assert slow.shape[1] == active_channels(slow_full.shape[1], 0.5)
    # the Fast pathway and the laterals hold no slim layer: no stage reaches them
    from mutual_mm.ops import SlimMixin
    assert not any(isinstance(m, SlimMixin) for m in model.fast_path.modules())
    for name in model._lateral_names():
        assert not any(isinstance(m, SlimMixin)
                       for m in getattr(model.slow_path, name).modules())


# ------------------------------------------------------------- deployment
def test_classifier_calibrates_and_exports_stage_widths_to_onnx(tmp_path):
    from mmengine.registry import MODELS, init_default_scope

    from mutual_mm.deploy import calibrate_bn
    from mutual_mm.deploy.onnx_export import check_onnx, export_onnx, static_exported_part

    from .test_classifier import samples, tiny_classifier
    init_default_scope('mmengine')
    torch.manual_seed(0)
    model = MODELS.build(tiny_classifier())
    model.init_weights()
    widths = (0.5, 0.25, 1.0, 0.5, 0.75, 1.0)  # stem, layer1..layer5
    batch = dict(inputs=[torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)] * 2,
                 data_samples=samples([1, 2]))
    stats = calibrate_bn(model, [batch], num_batches=1, width=widths)
    assert stats['backbone.stem.bn'][0].numel() == 8  # 0.5 x 16
    assert stats['backbone.layer3.0.pointwise_conv.bn'][0].numel() == 32  # 0.5 x 64
    assert stats['backbone.layer4.0.pointwise_conv.bn'][0].numel() == 96  # 0.75 x 128
    model.eval()
    shape = (1, 3, 40, 40)
    part = static_exported_part(model, widths, shape)
    x = torch.randn(shape)
    with torch.no_grad():
        mutual_mm.set_model_width(model, widths)
        torch.testing.assert_close(part(x)[0], model(x), rtol=1e-4, atol=1e-5)
    path = export_onnx(part, shape, str(tmp_path / 'classifier.onnx'))
    check = check_onnx(part, path, x)
    assert check['within_tolerance'], check


@needs('mmdet')
def test_detector_exports_stage_widths_to_onnx(tmp_path):
    import os.path as osp

    from mutual_mm.deploy.onnx_export import check_onnx, export_onnx, static_exported_part
    from mutual_mm.utils import build_model, load_config
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = load_config(osp.join(
        root, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py'))
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    assert list(model.backbone.width_stages()) == ['stem+layer1', 'layer2', 'layer3',
                                                   'layer4']
    shape = (1, 3, 96, 160)
    widths = (0.5, 1.0, 0.25, 0.75)
    part = static_exported_part(model, widths, shape)
    full = static_exported_part(model, 1.0, shape)
    assert sum(p.numel() for p in part.parameters()) < \
        sum(p.numel() for p in full.parameters())
    path = export_onnx(part, shape, str(tmp_path / 'detector.onnx'))
    check = check_onnx(part, path, torch.randn(shape))
    assert check['outputs'] == 5 and check['within_tolerance'], check


# ------------------------------------------------------ the training option
HOOK = dict(type='MutualLearningHook', width_range=(0.5, 1.0), width_step=0.25,
            num_random=2, stage_widths=True)
SCALES, FRAMES = (48, 32), (4, 2)


def _rec_cfg(tmp, work, max_iters=2, with_test=False, **hook_changes):
    from .helpers import rec_train_cfg
    return rec_train_cfg(tmp / work, tmp / 'data', scales=SCALES, frames=FRAMES,
                         hook=dict(HOOK, **hook_changes), max_iters=max_iters,
                         with_test=with_test)


@pytest.fixture(scope='module')
def staged(tmp_path_factory):
    """SlowOnly trained 2 iterations with stage_widths=True; the cohorts it drew,
    the widths its backbone was set to, its config and checkpoint."""
    from mutual_mm.engine import mutual_step
    from mutual_mm.models import SlimResNet3dSlowOnly
    tmp = tmp_path_factory.mktemp('stage_widths')
    cohorts, widths = [], []
    sample, set_width = mutual_step.sample_cohort, SlimResNet3dSlowOnly.set_width

    def spy_sample(*args, **kwargs):
        cohorts.append(sample(*args, **kwargs))
        return cohorts[-1]

    def spy_set_width(self, width):
        widths.append(width)
        return set_width(self, width)

    cfg = _rec_cfg(tmp, 'work', with_test=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mutual_step, 'sample_cohort', spy_sample)
        mp.setattr(SlimResNet3dSlowOnly, 'set_width', spy_set_width)
        Runner.from_cfg(copy.deepcopy(cfg)).train()
    return dict(tmp=tmp, cfg=cfg, checkpoint=str(tmp / 'work' / 'iter_2.pth'),
                cohorts=cohorts, widths=widths)


def _record(path):
    return TrainedSpace.from_checkpoint(torch.load(path, weights_only=False))


@needs('mmaction')
def test_random_members_draw_stage_widths_full_and_min_stay_uniform(staged):
    cohorts = staged['cohorts']
    assert len(cohorts) == 2
    members = [m for cohort in cohorts for m in cohort]
    for m in members:
        if m.name == 'full':
            assert m.width == 1.0
        elif m.name == 'min':
            assert m.width == 0.5
        else:  # on the grid, one per stage (equal draws normalize to a float)
            widths = m.width if isinstance(m.width, tuple) else (m.width, )
            assert len(widths) in (1, 5) and set(widths) <= {0.5, 0.75, 1.0}
    staged_members = [m for m in members if isinstance(m.width, tuple)]
    assert staged_members and all(m.name.startswith('rand') for m in staged_members)
    # the backbone ran them
    assert {m.width for m in staged_members} <= set(staged['widths'])


@needs('mmaction')
def test_the_checkpoint_records_stage_widths_and_a_resume_must_keep_them(staged):
    tmp, checkpoint = staged['tmp'], staged['checkpoint']
    record = _record(checkpoint)
    assert record.stage_widths is True
    assert 'per stage' in record.describe()
    uniform = _rec_cfg(tmp, 'resumed', max_iters=3, stage_widths=False)
    uniform.update(load_from=checkpoint, resume=True)
    with pytest.raises(ValueError, match=r'stage_widths True vs False'):
        Runner.from_cfg(uniform).train()
    # a uniform record refuses a stage-width subnet, naming the setting
    subnet = Subnet((0.5, 1.0, 0.75, 1.0, 0.5), 48, 4)
    assert check_trained([subnet], record) == {}
    with pytest.raises(ValueError, match=r'w0\.5-1-0\.75-1-0\.5_s48_f4: stage widths .*'
                       r'trained uniform widths only \(MutualLearningHook\(stage_widths='
                       r'False\)\)'):
        check_trained([subnet], dataclasses.replace(record, stage_widths=False))


@needs('mmaction')
def test_lookup_table_and_export_of_a_stage_width_subnet(staged, tmp_path):
    from mutual_mm.deploy import build_lookup_table
    from mutual_mm.deploy.export import export_subnet_files
    from mutual_mm.deploy.lookup_table import TableRow
    from mutual_mm.utils import build_model
    from tools.calibrate_bn import main as calibrate
    cfg, checkpoint = copy.deepcopy(staged['cfg']), staged['checkpoint']
    cfg.work_dir = str(tmp_path / 'work')
    widths = (0.5, 1.0, 0.75, 1.0, 0.5)
    subnet = Subnet(widths, 32, 2)
    # the calibration tool takes stage widths as 0.5-1-0.75-1-0.5; the table and
    # the export read the subnet's statistics from its checkpoint
    cfg_file, calibrated = str(tmp_path / 'config.py'), str(tmp_path / 'calibrated.pth')
    cfg.dump(cfg_file)
    calibrate([cfg_file, checkpoint, '--out', calibrated, '--widths', width_str(widths),
               '--resolutions', '32', '--frames', '2', '--num-batches', '1'])
    (row, ), _ = build_lookup_table(cfg, calibrated, [subnet], num_batches=1)
    assert row.subnet == subnet and row.trained and row.flops > 0
    assert row.subnet.key == 'w0.5-1-0.75-1-0.5_s32_f2'
    assert TableRow.from_dict(row.as_dict()).subnet == subnet

    exported = export_subnet_files(cfg, calibrated, subnet, str(tmp_path / 'subnet'))
    rebuilt = build_model(exported.cfg)  # the written config builds the static model
    rebuilt.load_state_dict(torch.load(exported.weights, weights_only=False)['state_dict'])
    rebuilt.eval()
    inputs, _ = exported.examples[0]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(inputs), exported.static(inputs))
    assert sum(p.numel() for p in rebuilt.parameters()) < \
        sum(p.numel() for p in build_model(cfg).parameters())
