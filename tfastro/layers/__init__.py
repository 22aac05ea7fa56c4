"""Registered Keras 3 layers (keras.ops only, so they also run on the JAX backend)."""
from tfastro.layers.conv import ChannelGlorotUniform, ConvNorm3D
from tfastro.layers.fastgan import (GLU, ConditionProjection, DownBlock, SimpleDecoder,
                                    SkipLayerExcitation, UpBlock)
from tfastro.layers.mim import MIMBlock3D, MIMN3D, MIMS3D, SpatioTemporalLSTMCell3D
from tfastro.layers.norm import TensorLayerNorm

__all__ = ["ChannelGlorotUniform", "ConvNorm3D", "MIMBlock3D", "MIMN3D", "MIMS3D",
           "SpatioTemporalLSTMCell3D", "TensorLayerNorm", "GLU", "ConditionProjection", "DownBlock",
           "SimpleDecoder", "SkipLayerExcitation", "UpBlock"]
