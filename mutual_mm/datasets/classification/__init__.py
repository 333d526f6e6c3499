"""Data side of image classification (MutualNet's ImageNet pre-training and the
Fashion-MNIST replication): datasets, transforms and the accuracy metric, all
registered in mmengine's root registries (plain names work in any scope)."""
from .datasets import ImageListDataset, MNISTIdxDataset, read_idx
from .metric import TopKAccuracy
from .transforms import ClsRandomResizedCrop, ClsResizeEdge, PackClsInputs

__all__ = ['ImageListDataset', 'MNISTIdxDataset', 'read_idx', 'TopKAccuracy',
           'ClsRandomResizedCrop', 'ClsResizeEdge', 'PackClsInputs']
