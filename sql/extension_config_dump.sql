-- Extension only: tells pg_dump which extension tables hold the operator's
-- data. pg_dump then saves their rows, while CREATE EXTENSION recreates the
-- rest on restore. (A portable install is dumped like any other schema.)
SELECT pg_catalog.pg_extension_config_dump('filegc.setting_overrides', '');
SELECT pg_catalog.pg_extension_config_dump('filegc.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('filegc.tombstones', '');
SELECT pg_catalog.pg_extension_config_dump('filegc.tombstones_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('filegc.invalid_refs', '');
