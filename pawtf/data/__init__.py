"""Data: the PetFinder table, images, demo data, splits and tf.data pipelines."""
