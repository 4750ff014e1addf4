-- Catalog replica, version 1: one typed table per entity of the registry
-- (loja_protocol::ENTITIES), key = the entity key, SQL types = ColType::sql(),
-- NOT NULL = required or key. Generated once from the registry, then kept by
-- hand; the test `catalog::tests::tables_match_the_registry` fails on any drift.
--
-- WITHOUT ROWID for small rows with a text key (the key *is* the b-tree), a
-- rowid table where the row is big (JSON, letter text), where the key is a
-- single integer (INTEGER PRIMARY KEY is the rowid) and for `products`,
-- whose rowid the FTS5 index points at.
--
-- The secret entity `store_certificate` has no table: its rows live in
-- DIR/secrets/store_certificate.json (mode 0600).

-- states (EST): Brazilian states (UF)
CREATE TABLE states (
    uf TEXT NOT NULL,
    name TEXT NOT NULL,
    ibge_code INTEGER,
    PRIMARY KEY (uf)
) WITHOUT ROWID;

-- cities (CID): Cities by IBGE code
CREATE TABLE cities (
    ibge_code INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    uf TEXT NOT NULL
);

-- ncm (NCM): NCM codes with IBPT approximate tax rates (basis points)
CREATE TABLE ncm (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    federal_rate_bp INTEGER,
    state_rate_bp INTEGER,
    municipal_rate_bp INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- products (PRD): Products
CREATE TABLE products (
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    ncm TEXT,
    brand TEXT,
    department TEXT,
    is_kit INTEGER,
    weighable INTEGER,
    active INTEGER,
    updated_at TEXT,
    PRIMARY KEY (code)
);

-- barcodes (BAR): Product identification: GTIN/EAN barcodes
CREATE TABLE barcodes (
    barcode TEXT NOT NULL,
    product_code TEXT NOT NULL,
    pack_qty INTEGER,
    PRIMARY KEY (barcode)
) WITHOUT ROWID;

-- kits (KIT): Kit components
CREATE TABLE kits (
    kit_code TEXT NOT NULL,
    component_code TEXT NOT NULL,
    qty INTEGER NOT NULL,
    price INTEGER,
    PRIMARY KEY (kit_code, component_code)
) WITHOUT ROWID;

-- prices (PRC): Prices by price list ('base' chain-wide, or a node id)
CREATE TABLE prices (
    product_code TEXT NOT NULL,
    price_list TEXT NOT NULL,
    price INTEGER NOT NULL,
    promo_price INTEGER,
    promo_until TEXT,
    updated_at TEXT,
    PRIMARY KEY (product_code, price_list)
) WITHOUT ROWID;

-- stock (ETQ): Stock on hand at the store
CREATE TABLE stock (
    product_code TEXT NOT NULL,
    qty INTEGER NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (product_code)
) WITHOUT ROWID;

-- product_taxes (TRB): Taxes to sell a product: ECF tribute, NCM, PIS/COFINS, ICMS, ST, FCP
CREATE TABLE product_taxes (
    product_code TEXT NOT NULL,
    ecf_tribute TEXT NOT NULL,
    ncm TEXT,
    cfop TEXT,
    cest TEXT,
    icms_cst TEXT,
    icms_rate_bp INTEGER,
    icms_st_rate_bp INTEGER,
    icms_retained INTEGER,
    fcp_rate_bp INTEGER,
    pis_cst TEXT,
    pis_rate_bp INTEGER,
    cofins_cst TEXT,
    cofins_rate_bp INTEGER,
    PRIMARY KEY (product_code)
) WITHOUT ROWID;

-- discount_reasons (MDS): Discount reasons
CREATE TABLE discount_reasons (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    active INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- discount_types (TDS): Discount types
CREATE TABLE discount_types (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    max_percent_bp INTEGER,
    needs_authorization INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- payment_methods (FPG): Payment methods
CREATE TABLE payment_methods (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    kind TEXT NOT NULL,
    tef INTEGER,
    gives_change INTEGER,
    active INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- electronic_products (PEL): Electronic products (top-ups, gift cards) sold through a payment provider
CREATE TABLE electronic_products (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    provider TEXT,
    min_amount INTEGER,
    max_amount INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- employees (FUN): Employees (operators, supervisors)
CREATE TABLE employees (
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    cpf TEXT,
    role TEXT,
    active INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- customers (CLI): Customers
CREATE TABLE customers (
    document TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    birth_date TEXT,
    city_ibge_code INTEGER,
    uf TEXT,
    credit_limit INTEGER,
    lgpd_consent INTEGER,
    updated_at TEXT,
    PRIMARY KEY (document)
) WITHOUT ROWID;

-- suppliers (FOR): Suppliers
CREATE TABLE suppliers (
    document TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    PRIMARY KEY (document)
) WITHOUT ROWID;

-- lgpd_letters (LGL): LGPD consent letter versions
CREATE TABLE lgpd_letters (
    version INTEGER PRIMARY KEY NOT NULL,
    text TEXT NOT NULL,
    published_at TEXT
);

-- lgpd_config (LGC): LGPD configuration
CREATE TABLE lgpd_config (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name)
) WITHOUT ROWID;

-- sale_modalities (MOD): Sale modalities
CREATE TABLE sale_modalities (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- sales_channels (CNV): Sales channels
CREATE TABLE sales_channels (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- promotions (PRM): Promotional campaigns
CREATE TABLE promotions (
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    rule TEXT,
    active INTEGER,
    PRIMARY KEY (code)
);

-- discount_rules (RDS): Automatic discount rules
CREATE TABLE discount_rules (
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    product_code TEXT,
    min_qty INTEGER,
    discount_bp INTEGER NOT NULL,
    starts_at TEXT,
    ends_at TEXT,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- sms_promotions (SMS): SMS promotions
CREATE TABLE sms_promotions (
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    starts_at TEXT,
    ends_at TEXT,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- loyalty_programs (FID): Loyalty programs
CREATE TABLE loyalty_programs (
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    points_per_real INTEGER,
    active INTEGER,
    PRIMARY KEY (code)
) WITHOUT ROWID;

-- parameters (PAR): General parameters
CREATE TABLE parameters (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name)
) WITHOUT ROWID;

-- store_setup (LOJ): Store setup (name, CNPJ, address, fiscal settings)
CREATE TABLE store_setup (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name)
) WITHOUT ROWID;

-- omni_orders (OMN): Omni-channel orders (pre-sales) to be picked up or delivered
CREATE TABLE omni_orders (
    id TEXT NOT NULL,
    customer_document TEXT,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    items TEXT,
    created_at TEXT,
    PRIMARY KEY (id)
);

-- What the POS looks up. The composite keys already serve prices by
-- product_code and kits by kit_code (leading key column), customers are
-- found by their key (document); only these need their own index.
CREATE INDEX barcodes_product_code ON barcodes (product_code);
CREATE INDEX cities_uf ON cities (uf);

-- Product name search: an external-content FTS5 index over products.name
-- (no second copy of the names). Accents are folded ("cafe" finds "Café").
CREATE VIRTUAL TABLE products_fts USING fts5 (
    name,
    content = 'products',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Kept in sync by triggers, through a queue: a trigger that writes into an
-- FTS5 table directly makes FTS5 flush its pending terms at every row (the
-- trigger's statement savepoint), about 8x slower on a bulk load. The
-- triggers note each change here instead (old name to take out, new name to
-- put in, in order) and every writer of products flushes the queue into
-- products_fts with one statement in the same transaction, before commit
-- (the apply engine does it after each page; see apply::flush_fts):
--   INSERT INTO products_fts (products_fts, rowid, name)
--   SELECT CASE WHEN remove THEN 'delete' END, product_rowid, name
--   FROM products_fts_queue ORDER BY seq;
--   DELETE FROM products_fts_queue;
-- The queue is empty at every commit.
CREATE TABLE products_fts_queue (
    seq INTEGER PRIMARY KEY,
    product_rowid INTEGER NOT NULL,
    name TEXT NOT NULL,
    remove INTEGER NOT NULL
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts_queue (product_rowid, name, remove) VALUES (new.rowid, new.name, 0);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts_queue (product_rowid, name, remove) VALUES (old.rowid, old.name, 1);
END;

-- An upsert rewrites every column; re-index only when the name changed.
CREATE TRIGGER products_fts_update AFTER UPDATE OF name ON products
WHEN old.name IS NOT new.name BEGIN
    INSERT INTO products_fts_queue (product_rowid, name, remove) VALUES (old.rowid, old.name, 1);
    INSERT INTO products_fts_queue (product_rowid, name, remove) VALUES (new.rowid, new.name, 0);
END;

-- Each entity's feed position, committed in the same transaction as the
-- page it covers (secret entities included).
CREATE TABLE watermarks (
    entity TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Note: products_fts points at products' implicit rowid. VACUUM may renumber
-- the rowids of a table without an INTEGER PRIMARY KEY, so replica.db is
-- never vacuumed; if it ever is, follow it with
-- INSERT INTO products_fts (products_fts) VALUES ('rebuild').
