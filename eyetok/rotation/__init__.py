"""The credential rotation drill: the versioned secret store's model (``versions``), its
sealing at rest (``sealing``), and what a version means to each sink type (``material``)."""
