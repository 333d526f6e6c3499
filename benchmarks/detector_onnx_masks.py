"""Why a whole detector's segm mAP in ONNX Runtime differs from PyTorch's:
the same exported subnet evaluated three ways on its test set.

    python benchmarks/detector_onnx_masks.py SUBNET_DIR [--out FILE]

SUBNET_DIR is what `tools/export_subnet.py ... --onnx` wrote (subnet_config.py,
subnet.pth, subnet.onnx). Rows: ONNX Runtime; PyTorch (mmdet pastes each mask
at the original image size); PyTorch with MMDeploy's mask post-processing
(masks pasted at the network input's size, cropped to the image and resized,
nearest, to the original size, as the exported graph and End2EndModel do).
When the third row equals the first, the segm gap is the pasting resolution.
"""
import argparse
import copy
import os.path as osp
import sys
import time
import warnings

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root
from benchmarks import common  # noqa: E402

import mutual_mm  # noqa: E402,F401
from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mutual_mm.deploy.mmdeploy_export import detections_to_instances  # noqa: E402
from mutual_mm.deploy.onnx_export import evaluate_onnx_detector  # noqa: E402
from mutual_mm.utils import load_config  # noqa: E402

warnings.filterwarnings('ignore')

KEYS = ('coco/bbox_mAP', 'coco/segm_mAP')


def pytorch_metrics(cfg, masks_at_input_size: bool) -> dict:
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    model = runner.model
    if masks_at_input_size:
        stock = model.predict

        def predict(inputs, data_samples, rescale=True):
            results = stock(inputs, data_samples, rescale=False)  # input coordinates
            for sample in results:
                pred = sample.pred_instances
                dets = pred.bboxes.new_zeros((len(pred), 5))
                dets[:, :4], dets[:, 4] = pred.bboxes, pred.scores
                outputs = [dets[None].numpy(), pred.labels[None].numpy(),
                           pred.masks[None].numpy()]
                sample.pred_instances = detections_to_instances(outputs, sample)
            return results
        model.predict = predict
    metrics = runner.test()
    return {k: float(metrics[k]) for k in KEYS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('subnet_dir')
    parser.add_argument('--out', default='benchmarks/results/detector_onnx_masks_cpu.json')
    args = parser.parse_args(argv)
    cfg = load_config(osp.join(args.subnet_dir, 'subnet_config.py'))
    cfg.work_dir = osp.join(args.subnet_dir, 'masks_study')
    cfg.log_level = 'ERROR'
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    onnx = evaluate_onnx_detector(osp.join(args.subnet_dir, 'subnet.onnx'), runner.model,
                                  loader, Evaluator(cfg.test_evaluator), threads=1)
    rows = dict(onnxruntime={k: float(onnx[k]) for k in KEYS},
                pytorch=pytorch_metrics(cfg, masks_at_input_size=False),
                pytorch_masks_pasted_at_input_size=pytorch_metrics(cfg, True))
    subnet = dict(width=cfg.model.width, config=osp.join(args.subnet_dir, 'subnet_config.py'))
    print(rows)
    common.save_json(args.out, dict(
        cpu=common.device_name(torch.device('cpu')), date=time.strftime('%Y-%m-%d'),
        command=' '.join(['benchmarks/detector_onnx_masks.py'] + sys.argv[1:]),
        subnet=subnet, rows=rows))


if __name__ == '__main__':
    main()
