"""Feature-set implementations; use ``featurize.featuresets.get_feature_set`` to get one by name."""
