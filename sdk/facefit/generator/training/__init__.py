"""Training the generator: the training config, packs of aligned training data,
batches with on-the-fly augmentation, and the training loop.
"""
