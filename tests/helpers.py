"""Inputs for the stock models, shaped as the host libraries' pipelines pack them."""
import torch
from mmengine.structures import InstanceData


def det_packed_inputs(height=128, width=160, num_boxes=2, num_classes=80):
    """One image with boxes and masks, as mmdet's PackDetInputs emits it."""
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, height, width)],
                          num_items=[num_boxes], num_classes=num_classes,
                          with_mask=True)


def action_packed_inputs(frames, size=64, label=3, batch_size=1, seed=0):
    """Clips as mmaction's FormatShape('NCTHW') + PackActionInputs emit them."""
    from mmaction.structures import ActionDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (1, 3, frames, size, size), generator=g,
                            dtype=torch.uint8) for _ in range(batch_size)]
    samples = [ActionDataSample().set_gt_label(label) for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


def ava_packed_inputs(frames=4, size=64, num_classes=81):
    """One AVA clip with a person proposal and its multi-label ground truth."""
    from mmaction.structures import ActionDataSample
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (1, 3, frames, size, size), generator=g,
                         dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 60.0], [20.0, 10.0, 60.0, 50.0]])
    labels = torch.zeros(2, num_classes)
    labels[0, 5] = labels[1, 12] = labels[1, 30] = 1
    sample = ActionDataSample(metainfo=dict(img_shape=(size, size)))
    sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
    sample.proposals = InstanceData(bboxes=boxes.clone())
    return dict(inputs=[clip[0]], data_samples=[sample])


def loss_of(model, packed):
    """The training forward of a host model: preprocess, then mode='loss'."""
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)  # mmengine's own reduction
    return losses, total
