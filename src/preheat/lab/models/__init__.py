"""The lab's built-in models, each written out in one file: a small GPT and a CIFAR ResNet-18."""

from preheat.lab.models.gpt import GPT, GPTConfig
from preheat.lab.models.resnet import BasicBlock, ResNet18

__all__ = ["GPT", "GPTConfig", "BasicBlock", "ResNet18"]
