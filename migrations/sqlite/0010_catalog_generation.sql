-- The catalog (catalogs, packages, their policies, resource roles and separation-of-duties
-- rules) changes seldom and is read by every page. Each instance keeps it in memory
-- (`service::snapshot`) and checks this one number before using it: any change to those
-- tables adds one to it in the same transaction, so a page sees a change as soon as it is
-- committed, on this instance or another. A group's rename counts too (rules show group names).
CREATE TABLE catalog_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 1);

-- SQLite has row triggers only: one per table and kind of change.
CREATE TRIGGER catalogs_insert_generation AFTER INSERT ON catalogs
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER catalogs_update_generation AFTER UPDATE ON catalogs
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER catalogs_delete_generation AFTER DELETE ON catalogs
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_systems_insert_generation AFTER INSERT ON resource_systems
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_systems_update_generation AFTER UPDATE ON resource_systems
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_systems_delete_generation AFTER DELETE ON resource_systems
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resources_insert_generation AFTER INSERT ON resources
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resources_update_generation AFTER UPDATE ON resources
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resources_delete_generation AFTER DELETE ON resources
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_roles_insert_generation AFTER INSERT ON resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_roles_update_generation AFTER UPDATE ON resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER resource_roles_delete_generation AFTER DELETE ON resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER access_packages_insert_generation AFTER INSERT ON access_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER access_packages_update_generation AFTER UPDATE ON access_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER access_packages_delete_generation AFTER DELETE ON access_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_resource_roles_insert_generation AFTER INSERT ON package_resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_resource_roles_update_generation AFTER UPDATE ON package_resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_resource_roles_delete_generation AFTER DELETE ON package_resource_roles
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_packages_insert_generation AFTER INSERT ON package_incompatible_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_packages_update_generation AFTER UPDATE ON package_incompatible_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_packages_delete_generation AFTER DELETE ON package_incompatible_packages
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_groups_insert_generation AFTER INSERT ON package_incompatible_groups
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_groups_update_generation AFTER UPDATE ON package_incompatible_groups
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER package_incompatible_groups_delete_generation AFTER DELETE ON package_incompatible_groups
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policies_insert_generation AFTER INSERT ON policies
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policies_update_generation AFTER UPDATE ON policies
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policies_delete_generation AFTER DELETE ON policies
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policy_requestors_insert_generation AFTER INSERT ON policy_requestors
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policy_requestors_update_generation AFTER UPDATE ON policy_requestors
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER policy_requestors_delete_generation AFTER DELETE ON policy_requestors
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
CREATE TRIGGER directory_groups_rename_generation AFTER UPDATE OF name ON directory_groups
BEGIN UPDATE catalog_generation SET generation = generation + 1; END;
