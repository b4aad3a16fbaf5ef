"""Datasets (built-in Fashion-MNIST, image folders) yielding (PIL image, label), and their transforms."""

from compress.data.builtin import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist
from compress.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    UNLABELLED,
    DataBundle,
    Subset,
    TransformDataset,
    build_datasets,
    is_labelled,
)
from compress.data.transforms import build_mixup, eval_transform, train_transform

__all__ = [
    "DataBundle",
    "TransformDataset",
    "Subset",
    "build_datasets",
    "is_labelled",
    "UNLABELLED",
    "eval_transform",
    "train_transform",
    "build_mixup",
    "load_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
