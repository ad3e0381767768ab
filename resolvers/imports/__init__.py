"""Profile imports: the ProfileImport node, its query and its progress subscription."""
