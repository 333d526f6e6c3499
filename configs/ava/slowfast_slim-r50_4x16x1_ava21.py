# AVA v2.1 action detection, SlowFast-R50 4x16: the paper's Table IX protocol.
# The stock mmaction2 config with the slim backbone at full width (width 1.0 and
# the full Slow input, so it IS the stock backbone; no MutualLearningHook, no
# MultiResolution: AVA itself is trained as usual), initialised from a
# Kinetics-400 MutualNet checkpoint.
#
# Schedule: the stock one, kept (20 epochs, 8 GPUs x 16 clips, lr 0.2, linear
# warm-up for 5 epochs, x0.1 at epochs 10 and 15). The paper's (20 epochs, batch
# 32, lr 0.05, 5 warm-up epochs, x0.1 at 10 and 15) is the same at a quarter of the
# batch with the lr scaled linearly (0.05 / 32 = 0.2 / 128); to run it exactly:
# --cfg-options train_dataloader.batch_size=4 optim_wrapper.optimizer.lr=0.05 (8 GPUs)
# Data: data/ava as in mmaction2's AVA preparation (tools/data/ava), or
# mutual_mm.datasets.make_ava('data/ava') for a small generated set.
_base_ = ('mmaction::detection/slowfast/'
          'slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py')
custom_imports = dict(imports=['mutual_mm'], allow_failed_imports=False)

# The stock config loads a Kinetics SlowFast *recognizer* checkpoint into the whole
# detector (model.init_cfg: its backbone.* keys match, cls_head.* is ignored).
# SlimResNet3dSlowFast keeps the stock keys, so a MutualNet Kinetics checkpoint
# (the last checkpoint of a SlowFast-4x16 R50 MutualNet run on Kinetics-400, e.g.
# configs/kinetics/slowfast_slim-r50_mutualnet-4x16x1-*) loads the same way,
# full-width weights. Placeholder path: point it at yours.
kinetics_mutualnet = 'checkpoints/mutualnet_slowfast_r50_4x16x1_kinetics400.pth'
model = dict(
    init_cfg=dict(type='Pretrained', checkpoint=kinetics_mutualnet),
    backbone=dict(type='SlimResNet3dSlowFast'))  # all other stock arguments stay
