"""Detectors deployed whole: the proposal count as a subnet axis, whole-model
FLOPs, the whole detector in ONNX (MMDeploy, standard operators) checked in
ONNX Runtime against PyTorch on real test images, and its metric there."""
import copy
import os.path as osp

import onnx
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

import mutual_mm  # noqa: F401
from mutual_mm.deploy import Subnet, apply_subnet, apply_subnet_to_cfg, export_subnet
from mutual_mm.deploy.complexity import measure_costs, preprocessed_examples
from mutual_mm.deploy.onnx_export import (evaluate_onnx_detector, onnx_latency_ms,
                                          write_checked_onnx)
from mutual_mm.hosts import host_of
from mutual_mm.utils import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_DET = osp.join(ROOT, 'configs/demo/mask-rcnn_slim-r18_fpn_mutualnet_shapes-demo.py')
STANDARD_DOMAINS = {'', 'ai.onnx'}


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    """The demo's generated COCO-format shapes, tiny (8 train / 4 val images)."""
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from make_demo_data import make_demo_data
    root = tmp_path_factory.mktemp('shapes')
    make_demo_data(str(root / 'data' / 'mutual_demo'), images=(8, 4), videos=(2, 2))
    return root


def _cfg(kind: str, root, work_dir) -> 'Config':  # noqa: F821
    """The demo detector config on the tiny data: Mask R-CNN, or the same
    detector without its mask branch (Faster R-CNN)."""
    cfg = load_config(DEMO_DET)
    data_root = str(root / 'data' / 'mutual_demo' / 'shapes') + '/'
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[split].dataset.data_root = data_root
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = data_root + 'val/annotations.json'
    cfg.work_dir = str(work_dir)
    if kind == 'faster_rcnn':
        cfg.model.type = 'FasterRCNN'
        del cfg.model.roi_head.mask_roi_extractor, cfg.model.roi_head.mask_head
        cfg.model.train_cfg.rcnn.pop('mask_size')
        cfg.test_evaluator.metric = cfg.val_evaluator.metric = 'bbox'
    return cfg


def _built(kind, root, tmp_path, subnet):
    """A randomly initialized detector at ``subnet``, its test loader and the
    preprocessed first test batch."""
    cfg = _cfg(kind, root, tmp_path / 'work')
    torch.manual_seed(0)
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    model = runner.model.eval()
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    apply_subnet(model, loader.dataset, subnet)
    return cfg, model, loader, next(iter(loader))


# ----------------------------------------------------------------- proposals
def test_proposals_are_a_subnet_axis_of_two_stage_detectors(shapes, tmp_path):
    cfg, model, loader, _ = _built('mask_rcnn', shapes, tmp_path, Subnet(0.5, (128, 96)))
    stock = model.rpn_head.test_cfg.max_per_img
    assert stock == 100  # the demo config's test_cfg.rpn.max_per_img
    subnet = Subnet(0.5, (128, 77), proposals=20)
    assert subnet.key == 'w0.5_s128x77_p20' and subnet.network == Subnet(0.5, (128, 77))
    apply_subnet(model, loader.dataset, subnet)
    assert model.rpn_head.test_cfg.max_per_img == 20
    apply_subnet(model, loader.dataset, Subnet(0.5, (128, 77)))  # None: the config's own
    assert model.rpn_head.test_cfg.max_per_img == stock
    apply_subnet_to_cfg(cfg, subnet)
    assert cfg.model.test_cfg.rpn.max_per_img == 20
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=rf'proposals={bad}.*positive whole number'):
            Subnet(1.0, proposals=bad)


def test_proposals_are_refused_where_there_is_no_rpn():
    from mutual_mm.models import SlimResNet3dSlowOnly
    with pytest.raises(ValueError, match='SlimResNet3dSlowOnly has no region proposals'):
        apply_subnet(SlimResNet3dSlowOnly(), None, Subnet(1.0, proposals=50))
    cfg = load_config(osp.join(ROOT, 'configs/demo/slowonly_slim-r18_mutualnet_motion-demo.py'))
    with pytest.raises(ValueError, match='Recognizer3D has no region proposals'):
        apply_subnet_to_cfg(cfg, Subnet(1.0, 48, 8, proposals=50))


# --------------------------------------------------------------------- FLOPs
def test_whole_detector_flops_count_the_box_head_once_per_proposal(shapes, tmp_path):
    """Faster R-CNN (no masks): 40 more proposals cost 40 box-head passes; one
    pass is what the shared 2-fc head computes on a 7x7 RoI (multiply-adds)."""
    _, model, loader, batch = _built('faster_rcnn', shapes, tmp_path, Subnet(1.0, (128, 96)))
    head = model.roi_head.bbox_head
    channels, fc, classes = 64, 256, head.num_classes  # the demo config's
    per_region = channels * 49 * fc + fc * fc + fc * (classes + 1) + fc * 4 * classes
    costs = {}
    for proposals in (60, 20):
        apply_subnet(model, loader.dataset, Subnet(1.0, (128, 96), proposals=proposals))
        costs[proposals] = measure_costs(model, batch)
    assert costs[60]['features'] == costs[20]['features']
    assert costs[60]['model'] - costs[20]['model'] == 40 * per_region
    # the dense RPN head on the FPN maps comes on top of backbone + neck
    assert costs[20]['model'] > costs[20]['features'] + 20 * per_region


def test_mask_head_flops_follow_the_detections(shapes, tmp_path):
    """The mask head runs once per final detection (random weights: every
    image has at least 10)."""
    from mutual_mm.hosts.base import count_flops
    _, model, _, batch = _built('mask_rcnn', shapes, tmp_path, Subnet(1.0, (128, 96)))
    inputs, samples = preprocessed_examples(model, batch)[0]
    host, flops = host_of(model), {}
    with torch.no_grad():
        for cap in (10, 4):
            model.roi_head.test_cfg.max_per_img = cap  # detections per image
            assert len(model.predict(inputs, samples)[0].pred_instances) == cap
            flops[cap] = host.model_flops(inputs, samples)
    one_region = count_flops(model.roi_head.mask_head, torch.zeros(1, 64, 7, 7))
    assert one_region > 0 and flops[10] - flops[4] == 6 * one_region


# --------------------------------------------------------------------- ONNX
@pytest.mark.parametrize('kind', ['mask_rcnn', 'faster_rcnn'])
def test_whole_detector_runs_in_onnxruntime_as_in_pytorch(kind, shapes, tmp_path):
    cfg, model, loader, batch = _built(kind, shapes, tmp_path,
                                       Subnet(0.5, (128, 77), proposals=30))
    examples = preprocessed_examples(model, batch)
    static = export_subnet(model, 0.5, tuple(examples[0][0].shape)).eval()
    result = write_checked_onnx(static, examples, str(tmp_path / 'onnx'))
    assert result['part'] == 'model' and result['images'] == 4
    assert result['within_tolerance'] and result['labels_equal'] and result['same_counts']
    assert result['detections'] > 0 and result['box_px'] <= 1e-2

    graph = onnx.load(result['path'])
    onnx.checker.check_model(graph)
    ops = {(n.domain, n.op_type) for n in graph.graph.node}
    assert {d for d, _ in ops} <= STANDARD_DOMAINS  # runs in stock ONNX Runtime
    assert {'RoiAlign', 'NonMaxSuppression'} <= {op for _, op in ops}
    assert ('GridSample' in {op for _, op in ops}) == (kind == 'mask_rcnn')  # mask pasting
    assert [o.name for o in graph.graph.output] == \
        ['dets', 'labels'] + (['masks'] if kind == 'mask_rcnn' else [])
    # the RPN keeps the subnet's 30 proposals: the first NMS's box limit
    nms = [n for n in graph.graph.node if n.op_type == 'NonMaxSuppression'][0]
    limits = {init.name: onnx.numpy_helper.to_array(init) for init in graph.graph.initializer}
    limits.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
                   for n in graph.graph.node if n.op_type == 'Constant'})
    assert int(limits[nms.input[2]].reshape(-1)[0]) == 30

    # the test set in ONNX Runtime, scored by the config's own metric
    metrics = evaluate_onnx_detector(result['path'], static, loader,
                                     Evaluator(cfg.test_evaluator), threads=1)
    assert 'coco/bbox_mAP' in metrics and ('coco/segm_mAP' in metrics) == (kind == 'mask_rcnn')
    assert onnx_latency_ms(result['path'], [x.numpy() for x, _ in examples], threads=1,
                           repeats=1, warmup=0) > 0


def test_backbone_and_neck_remain_a_named_onnx_part(shapes, tmp_path):
    _, model, _, batch = _built('mask_rcnn', shapes, tmp_path, Subnet(0.5, (128, 96)))
    examples = preprocessed_examples(model, batch)
    static = export_subnet(model, 0.5, tuple(examples[0][0].shape)).eval()
    result = write_checked_onnx(static, examples[:1], str(tmp_path / 'onnx'), part='features')
    assert result['part'] == 'features' and result['outputs'] == 5  # the FPN levels
    with pytest.raises(ValueError, match="ONNX part 'scores'.*'model', 'features'"):
        write_checked_onnx(static, examples[:1], str(tmp_path / 'onnx'), part='scores')


# ------------------------------------------------------------------ repairs
def test_mmdeploy_repairs_hold_only_inside_an_export():
    from torch.onnx import symbolic_opset9

    from mutual_mm.compat.mmdeploy_onnx import mmdeploy_onnx_export
    export = torch.onnx.export
    model = torch.nn.Linear(2, 2)
    assert not hasattr(symbolic_opset9, '_cast_Long')  # removed from torch
    with mmdeploy_onnx_export(model):
        assert torch.onnx.export is not export
        assert symbolic_opset9._cast_Long is not None
        model.forward = model.forward  # what mmdeploy's export leaves behind
    assert torch.onnx.export is export and not hasattr(symbolic_opset9, '_cast_Long')
    assert 'forward' not in vars(model)
