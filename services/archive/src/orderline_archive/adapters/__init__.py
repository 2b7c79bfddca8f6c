"""The archive's database: tables and the dossier repository."""
