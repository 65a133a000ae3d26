"""Request and response models of the API that more than a route module's own code reads."""
