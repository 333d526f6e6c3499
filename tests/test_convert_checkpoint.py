"""Converting slimmable-networks (US-Net, S-Net) and MutualNet checkpoints.

The source architectures are rebuilt here from their model files' layouts
(JiahuiYu/slimmable_networks ``models/us_mobilenet_v*.py``, ``s_mobilenet_v*.py``,
``s_resnet.py``, ``slimmable_ops.py``; taoyang1122/MutualNet ``models/*.py``):
the same ``features``/``classifier`` key names, their channel rules written out
again independently of the converter, random weights and BN statistics. The
converted slim model must compute the source's logits at every width the
conversion accepts, with the statistics the conversion stored for it.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mutual_mm  # noqa: F401
from mutual_mm.deploy import CALIBRATION_KEY, Subnet
from mutual_mm.deploy.calibrated_subnet_hook import apply_calibrated_stats
from mutual_mm.engine.trained_space import TrainedSpace, check_trained
from mutual_mm.fileio import save_torch
from mutual_mm.hosts import set_model_width
from mutual_mm.deploy.converters import convert_slimmable_checkpoint, load_source_state_dict
from mutual_mm.registry import MODELS
from mutual_mm.utils import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'convert_checkpoint.py')
MBV2_DET_CONFIG = osp.join(ROOT, 'configs/mask_rcnn/mask-rcnn_slim-mbv2_fpn_mutualnet-2x_coco.py')
NUM_CLASSES = 10
SIZE = 32
US_MBV1_WIDTHS = [round(0.25 + 0.025 * i, 3) for i in range(31)]   # us_mobilenet_v1_val.yml
US_MBV2_WIDTHS = [round(0.35 + 0.025 * i, 3) for i in range(27)]   # us_mobilenet_v2_val.yml
SNET_WIDTHS = {'mobilenet_v1': [0.25, 0.5, 0.75, 1.0], 'mobilenet_v2': [0.35, 0.5, 0.75, 1.0],
               'resnet50': [0.25, 0.5, 0.75, 1.0]}
MUTUALNET_WIDTHS = {'mobilenet_v1': [0.25, 1.0], 'mobilenet_v2': [0.7, 0.9, 1.0],
                    'resnet50': [0.9, 1.0]}


# ----------------------------------------------------- the sources, rebuilt
def source_make_divisible(value, divisor, min_value):
    """TF-slim's rounding as the sources fork it (their own ``min_value``)."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class Switch:
    """The width a rebuilt source model runs at (the sources' global FLAGS)."""

    def __init__(self, widths):
        self.widths, self.width = list(widths), 1.0

    @property
    def index(self):
        return self.widths.index(self.width)


class SourceConv(nn.Conv2d):
    """A source conv: full weight; at the switch's width ``out_rule(width)``
    output channels (a depthwise conv: as many as its input) and the input's."""

    def __init__(self, switch, cin, cout, kernel, stride=1, out_rule=None, depthwise=False):
        super().__init__(cin, cout, kernel, stride, kernel // 2, groups=cin if depthwise else 1,
                         bias=False)
        self.switch, self.out_rule, self.is_depthwise = switch, out_rule, depthwise

    def forward(self, x):
        cin = x.shape[1]
        if self.is_depthwise:
            return F.conv2d(x, self.weight[:cin], None, self.stride, self.padding, 1, cin)
        cout = self.out_channels if self.out_rule is None else self.out_rule(self.switch.width)
        return F.conv2d(x, self.weight[:cout, :cin], None, self.stride, self.padding)


class SharedBN(nn.Module):
    """US-Net's USBatchNorm2d in eval mode: shared affine, ``bn.<i>`` statistics per width."""

    def __init__(self, switch, channels, rule):
        super().__init__()
        self.switch = switch
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.bn = nn.ModuleList(nn.BatchNorm2d(rule(w), affine=False) for w in switch.widths)

    def forward(self, x):
        c, stats = x.shape[1], self.bn[self.switch.index]
        return F.batch_norm(x, stats.running_mean[:c], stats.running_var[:c], self.weight[:c],
                            self.bias[:c], False, 0.0, 1e-5)


class PrivateBN(nn.Module):
    """S-Net's SwitchableBatchNorm2d: a whole BN per switch in ``bn.<i>``."""

    def __init__(self, switch, channels, rule):
        super().__init__()
        self.switch = switch
        self.bn = nn.ModuleList(nn.BatchNorm2d(rule(w)) for w in switch.widths)

    def forward(self, x):
        return self.bn[self.switch.index](x)


class SourceLinear(nn.Linear):
    """The classifier: reads as many features as arrive (USLinear / SlimmableLinear)."""

    def forward(self, x):
        return F.linear(x, self.weight[:, :x.shape[1]], self.bias)


class Body(nn.Module):
    """A block: ``body`` (+ ``shortcut`` or identity residual, + post ReLU for ResNet)."""

    def __init__(self, layers, residual=False, shortcut=None, post_relu=False):
        super().__init__()
        self.body = nn.Sequential(*layers)
        self.residual = residual
        if shortcut is not None:
            self.shortcut = nn.Sequential(*shortcut)
        self.post_relu = post_relu

    def forward(self, x):
        out = self.body(x)
        if self.residual:
            out = out + x
        elif hasattr(self, 'shortcut'):
            out = out + self.shortcut(x)
        return F.relu(out) if self.post_relu else out


class SourceModel(nn.Module):
    def __init__(self, switch, features, classifier):
        super().__init__()
        self.switch = switch
        self.features = nn.Sequential(*features, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(classifier)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def source_rules(source, arch):
    """``rule(channels, ratio, role) -> (width -> channels)``, as each source file sizes its
    layers: US-Net ``make_divisible(c * w / ratio) * ratio`` (divisor 8, min 1), MutualNet the
    same with divisor 1, S-Net its per-switch lists."""
    if source == 'usnet':
        return lambda c, r=1, role='out': lambda w: int(
            source_make_divisible(c * w / r, 8, 1) * r)
    if source == 'mutualnet':
        return lambda c, r=1, role='out': lambda w: int(
            source_make_divisible(c * w / r, 1, 1) * r)
    if arch == 'mobilenet_v1':
        return lambda c, r=1, role='out': lambda w: source_make_divisible(c * w, 8, 8)
    if arch == 'mobilenet_v2':  # expand: t x the block input's list entry
        return lambda c, r=1, role='out': lambda w: source_make_divisible(
            c // r * w, 8, 1) * r
    return lambda c, r=1, role='out': (lambda w: int(c * 4 * w) // 4) if role == 'mid' else (
        lambda w: int(c * w))


def build_source(source, arch, widths):
    """The source's model with random weights and statistics, and its switch."""
    switch = Switch(widths)
    rule = source_rules(source, arch)
    bn_cls = PrivateBN if source == 'snet' else SharedBN

    def conv_bn(cin, cout, kernel, stride=1, out=None, depthwise=False, act=nn.ReLU6):
        out = out or rule(cout)
        layers = [SourceConv(switch, cin, cout, kernel, stride, out, depthwise),
                  bn_cls(switch, cout, out)]
        return layers + ([act(inplace=True)] if act else [])

    features = []
    if arch == 'mobilenet_v1':
        stem = rule(32)
        features.append(nn.Sequential(*conv_bn(3, 32, 3, 2, stem)))
        cin, cin_rule = 32, stem
        for cout, blocks, stride in ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2),
                                     (1024, 2, 2)):
            for i in range(blocks):
                features.append(Body(conv_bn(cin, cin, 3, stride if i == 0 else 1, cin_rule,
                                             depthwise=True) + conv_bn(cin, cout, 1)))
                cin, cin_rule = cout, rule(cout)
        classifier = SourceLinear(1024, NUM_CLASSES)
    elif arch == 'mobilenet_v2':
        features.append(nn.Sequential(*conv_bn(3, 32, 3, 2)))
        cin = 32
        for t, cout, blocks, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                                        (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                                        (6, 320, 1, 1)):
            for i in range(blocks):
                s = stride if i == 0 else 1
                mid, mid_rule = cin * t, rule(cin * t, t, 'expand') if t != 1 else rule(cin)
                layers = conv_bn(cin, mid, 1, 1, mid_rule) if t != 1 else []
                layers += conv_bn(mid, mid, 3, s, mid_rule, depthwise=True)
                layers += conv_bn(mid, cout, 1, act=None)
                features.append(Body(layers, residual=s == 1 and cin == cout))
                cin = cout
        tail = SourceConv(switch, 320, 1280, 1)  # all 1280 channels at every width
        features.append(nn.Sequential(tail, nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)))
        classifier = SourceLinear(1280, NUM_CLASSES)
    else:
        stem = rule(64, 0.25, 'stem')
        features.append(nn.Sequential(*conv_bn(3, 64, 7, 2, stem, act=nn.ReLU),
                                      nn.MaxPool2d(3, 2, 1)))
        cin = 64
        for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            for i in range(blocks):
                s = 2 if i == 0 and stage else 1
                mid = rule(planes, 0.25, 'mid')
                layers = (conv_bn(cin, planes, 1, 1, mid, act=nn.ReLU)
                          + conv_bn(planes, planes, 3, s, mid, act=nn.ReLU)
                          + conv_bn(planes, planes * 4, 1, act=None))
                shortcut = conv_bn(cin, planes * 4, 1, s, act=None) if i == 0 else None
                features.append(Body(layers, residual=shortcut is None, shortcut=shortcut,
                                     post_relu=True))
                cin = planes * 4
        classifier = SourceLinear(2048, NUM_CLASSES)
    model = SourceModel(switch, features, classifier)
    randomize(model)
    return model.eval()


@torch.no_grad()
def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for name, tensor in model.state_dict().items():
        if tensor.dtype == torch.long:
            continue
        if name.endswith('running_var'):
            tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
        elif name.endswith(('running_mean', 'bias')):
            tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.1)
        elif tensor.dim() == 1:  # BN weights
            tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
        else:
            fan_in = tensor[0].numel()
            tensor.copy_(torch.randn(tensor.shape, generator=g) * (2.0 / fan_in) ** 0.5)


def source_file(model, path):
    """As the sources' train.py saves it: ``{'model': DataParallel state dict}``."""
    torch.save({'model': {f'module.{k}': v for k, v in model.state_dict().items()}}, path)
    return str(path)


def converted_model(result):
    model = MODELS.build(result.model)
    model.load_state_dict(result.checkpoint['state_dict'], strict=True)
    return model.eval()


def assert_same_logits(source, model, width, calibration, x):
    source.switch.width = width
    if calibration is not None:
        apply_calibrated_stats(model, calibration, Subnet(width, 224))
    set_model_width(model, width)
    with torch.no_grad():
        want, got = source(x), model(x, mode='tensor')
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err < 1e-5, f'width {width}: relative difference {err:.2g}'


def inputs(seed=1):
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ tests
def test_us_mobilenet_v1_equals_source_at_every_calibrated_width(tmp_path):
    source = build_source('usnet', 'mobilenet_v1', US_MBV1_WIDTHS)
    state = load_source_state_dict(source_file(source, tmp_path / 'us_mbv1.pt'))
    result = convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v1')
    assert result.refused == {}
    assert sorted(result.widths) == US_MBV1_WIDTHS
    calibration = result.checkpoint[CALIBRATION_KEY]
    assert sorted(calibration) == sorted(Subnet(w, 224).key for w in US_MBV1_WIDTHS)
    model, x = converted_model(result), inputs()
    for width in US_MBV1_WIDTHS:
        assert_same_logits(source, model, width, calibration, x)
    # the trained-space record: US-Net's range at 224 px
    space = TrainedSpace.from_checkpoint(result.checkpoint)
    assert tuple(space.width_range) == (0.25, 1.0) and space.scales == [224]
    check_trained([Subnet(0.25, 224), Subnet(0.6, 224), Subnet(1.0, 224)], space)
    for outside in (Subnet(0.2, 224), Subnet(0.5, 160)):
        with pytest.raises(ValueError, match='not trained on'):
            check_trained([outside], space)


def test_deploy_tools_list_the_calibrated_subnets_from_the_record(tmp_path):
    """The lookup table, calibration and export list a checkpoint's subnets from its
    trained-space record: for a converted US-MobileNetV1, exactly the subnets whose
    statistics the file holds, so none is calibrated again."""
    from mutual_mm.deploy import trained_subnets
    source = build_source('usnet', 'mobilenet_v1', US_MBV1_WIDTHS)
    state = load_source_state_dict(source_file(source, tmp_path / 'us_mbv1.pt'))
    result = convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v1')
    cfg = load_config(osp.join(ROOT, 'configs/pretrain/usnet_mbv1_imagenet.py'))
    listed = {s.key for s in trained_subnets(cfg, checkpoint=result.checkpoint)}
    assert listed == set(result.checkpoint[CALIBRATION_KEY])


def test_us_mobilenet_v2_converts_full_width_and_refuses_the_others(tmp_path):
    source = build_source('usnet', 'mobilenet_v2', US_MBV2_WIDTHS)
    state = load_source_state_dict(source_file(source, tmp_path / 'us_mbv2.pt'))
    result = convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v2')
    assert result.widths == (1.0, )
    assert sorted(result.refused) == US_MBV2_WIDTHS[:-1]
    # US-Net expands by t x the rounded input (6 x 8), active_channels rounds 96 x 0.35
    assert 'layer2.0.expand_conv.bn (expand): 48 channels in US-Net, 32 here' in \
        result.refused[0.35]
    assert any(r.startswith('conv2.bn (tail): 1280') for r in result.refused[0.5])
    assert_same_logits(source, converted_model(result), 1.0,
                       result.checkpoint[CALIBRATION_KEY], inputs())
    assert tuple(TrainedSpace.from_checkpoint(result.checkpoint).width_range) == (1.0, 1.0)
    with pytest.raises(ValueError, match=r'width 0\.35 does not convert exactly from US-Net '
                       r'mobilenet_v2: layer2\.0\.expand_conv\.bn'):
        convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v2', widths=[0.35, 1.0])


@pytest.mark.parametrize('arch', ['mobilenet_v1', 'mobilenet_v2', 'resnet50'])
def test_snet_equals_source_at_full_width(tmp_path, arch):
    source = build_source('snet', arch, SNET_WIDTHS[arch])
    state = load_source_state_dict(source_file(source, tmp_path / 's.pt'))
    result = convert_slimmable_checkpoint(state, 'snet', arch)
    assert result.widths == (1.0, )
    assert sorted(result.refused) == SNET_WIDTHS[arch][:-1]
    assert all('private BN' in reasons[0] for reasons in result.refused.values())
    assert CALIBRATION_KEY not in result.checkpoint
    assert any('affine parameters of the other switches are lost' in n for n in result.notes)
    assert_same_logits(source, converted_model(result), 1.0, None, inputs())


@pytest.mark.parametrize('arch', ['mobilenet_v1', 'mobilenet_v2', 'resnet50'])
def test_mutualnet_equals_source_at_full_width(tmp_path, arch):
    source = build_source('mutualnet', arch, MUTUALNET_WIDTHS[arch])
    state = load_source_state_dict(source_file(source, tmp_path / 'm.pt'))
    result = convert_slimmable_checkpoint(state, 'mutualnet', arch)
    assert result.widths == (1.0, )
    assert sorted(result.refused) == MUTUALNET_WIDTHS[arch][:-1]
    assert_same_logits(source, converted_model(result), 1.0, None, inputs())


def test_backbone_form_loads_into_the_backbone_and_equals_the_classifier_features(tmp_path):
    source = build_source('snet', 'resnet50', SNET_WIDTHS['resnet50'])
    state = load_source_state_dict(source_file(source, tmp_path / 's.pt'))
    backbone_result = convert_slimmable_checkpoint(state, 'snet', 'resnet50', form='backbone')
    classifier_result = convert_slimmable_checkpoint(state, 'snet', 'resnet50')
    assert backbone_result.model['type'] == 'SlimResNet'
    weights = backbone_result.checkpoint['state_dict']
    assert not any(k.startswith(('backbone.', 'head.')) for k in weights)
    assert {f'backbone.{k}' for k in weights} == {
        k for k in classifier_result.checkpoint['state_dict'] if not k.startswith('head.')}


def test_mask_rcnn_mbv2_backbone_loads_converted_us_mbv2_through_init_cfg(tmp_path):
    source = build_source('usnet', 'mobilenet_v2', US_MBV2_WIDTHS)
    state = load_source_state_dict(source_file(source, tmp_path / 'us_mbv2.pt'))
    for form, prefix in (('classifier', 'backbone.'), ('backbone', '')):
        result = convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v2', form=form)
        path = str(tmp_path / f'{form}.pth')
        save_torch(result.checkpoint, path)
        # docs/pretraining.md's config, its _base_ made absolute to live in tmp_path
        init_cfg = dict(type='Pretrained', checkpoint=path, **(dict(prefix=prefix) if prefix
                                                               else {}))
        config = tmp_path / f'mask_rcnn_from_{form}.py'
        config.write_text(f'_base_ = {MBV2_DET_CONFIG!r}\n'
                          f'model = dict(backbone=dict(init_cfg={init_cfg!r}))\n')
        cfg = load_config(str(config))
        assert cfg.model.backbone.type == 'SlimMobileNetV2'
        backbone = MODELS.build(cfg.model.backbone)
        backbone.init_weights()
        loaded = backbone.state_dict()
        weights = {k[len(prefix):]: v for k, v in result.checkpoint['state_dict'].items()
                   if k.startswith(prefix)}
        assert set(loaded) == set(weights), form
        for key, value in loaded.items():
            assert torch.equal(value, weights[key]), (form, key)


def test_mismatched_keys_and_bad_names_are_refused(tmp_path):
    source = build_source('usnet', 'mobilenet_v1', US_MBV1_WIDTHS)
    state = load_source_state_dict(source_file(source, tmp_path / 'us_mbv1.pt'))
    with pytest.raises(ValueError, match=r'does not have the S-Net mobilenet_v1 layout: '
                       r'\d+ missing \(e\.g\. features\.0\.1\.bn\.0\.weight'):
        convert_slimmable_checkpoint(state, 'snet', 'mobilenet_v1')
    with pytest.raises(ValueError, match='does not have the US-Net mobilenet_v2 layout'):
        convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v2')
    with pytest.raises(ValueError, match=r"arch='resnet18'; valid: \['mobilenet_v1', "
                       r"'mobilenet_v2', 'resnet50'\]"):
        convert_slimmable_checkpoint(state, 'usnet', 'resnet18')
    with pytest.raises(ValueError, match=r"US-Net released no resnet50; valid archs for "
                       r"usnet: \['mobilenet_v1', 'mobilenet_v2'\]"):
        convert_slimmable_checkpoint(state, 'usnet', 'resnet50')
    with pytest.raises(ValueError, match=r'holds 31 BN statistics per layer .* width list '
                       r'has 4'):
        convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v1',
                                     source_widths=[0.25, 0.5, 0.75, 1.0])
    shuffled = US_MBV1_WIDTHS[::-1]
    with pytest.raises(ValueError, match=r'features\.0\.1\.bn\.0 holds 8 channels, but '
                       r"US-Net's rule gives 32 at width 1"):
        convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v1', source_widths=shuffled)
    with pytest.raises(ValueError, match=r'width 0\.3333 is not one of'):
        convert_slimmable_checkpoint(state, 'usnet', 'mobilenet_v1', widths=[0.3333])
    training = tmp_path / 'latest_checkpoint.pt'  # the sources' train.py, meters included
    torch.save({'model': source.state_dict(), 'meters': Switch([1.0])}, training)
    with pytest.raises(ValueError, match='holds objects other than tensors'):
        load_source_state_dict(str(training))
    narrow_head = dict(state, **{'classifier.0.weight': state['classifier.0.weight'][:, :512]})
    with pytest.raises(ValueError, match=r'(?s)do not load into MutualImageClassifier: .*size '
                       r'mismatch for head\.fc\.weight'):
        convert_slimmable_checkpoint(narrow_head, 'usnet', 'mobilenet_v1')


def run_tool(*args):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_cli_converts_a_us_mobilenet_v1_file(tmp_path):
    source = build_source('usnet', 'mobilenet_v1', US_MBV1_WIDTHS)
    src = source_file(source, tmp_path / 'us_mobilenet_v1_calibrated.pt')
    out = str(tmp_path / 'us_mbv1_mutual_mm.pth')
    proc = run_tool(src, out, '--from', 'usnet', '--arch', 'mobilenet_v1')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'converted widths: 1, 0.975' in proc.stdout
    assert "act_cfg=dict(type='ReLU6')" in proc.stdout
    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    assert len(ckpt[CALIBRATION_KEY]) == 31
    assert ckpt['meta']['converted_from']['source'] == 'usnet'
    model = MODELS.build(ckpt['meta']['converted_from']['model'])
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert_same_logits(source, model.eval(), 0.5, ckpt[CALIBRATION_KEY], inputs())


def convert_tool():
    """tools/convert_checkpoint.py as a module, for its refusals (the command as a
    new process: test_cli_converts_a_us_mobilenet_v1_file)."""
    spec = importlib.util.spec_from_file_location('convert_checkpoint', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_refuses_bad_input(tmp_path, capsys):
    tool = convert_tool()
    source = build_source('snet', 'mobilenet_v1', SNET_WIDTHS['mobilenet_v1'])
    src, out = source_file(source, tmp_path / 's_mbv1.pt'), str(tmp_path / 'o.pth')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([src, out, '--from', 'snet', '--arch', 'resnet18'])
    assert exit_info.value.code == 2 and "invalid choice: 'resnet18'" in capsys.readouterr().err
    for args, message in (
            (['--from', 'usnet', '--arch', 'mobilenet_v1'],
             'does not have the US-Net mobilenet_v1 layout'),
            (['--from', 'snet', '--arch', 'mobilenet_v1', '--widths', '0.5'],
             'width 0.5 does not convert exactly from S-Net mobilenet_v1: S-Net trains a '
             'private BN')):
        with pytest.raises(SystemExit, match=message):
            tool.main([src, out, *args])
    assert not osp.exists(out)
    with pytest.raises(SystemExit, match='is the source file'):
        tool.main([src, src, '--from', 'snet', '--arch', 'mobilenet_v1'])
    with pytest.raises(SystemExit, match='missing.pt does not exist'):
        tool.main([str(tmp_path / 'missing.pt'), out, '--from', 'snet', '--arch',
                   'mobilenet_v1'])
    zipped = tmp_path / 's_mobilenet_v1.pt.zip'
    with zipfile.ZipFile(zipped, 'w') as archive:
        archive.write(src, 's_mobilenet_v1.pt')
    with pytest.raises(SystemExit, match=r"\.pt\.zip downloads hold the \.pt file; unzip it"):
        tool.main([str(zipped), out, '--from', 'snet', '--arch', 'mobilenet_v1'])
