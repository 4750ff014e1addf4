-- Taxes as the domain has them (shared/seeds 002: TributoECF, IcmsEst,
-- PisCofins, IcmsRet, SaldoFCP, each with its own availability minutes):
-- the ICMS, the ST retained and the FCP vary with the state (UF); the
-- store's lookup takes the rows of its own state (store_setup `uf`).

-- product_taxes keeps what is the same in every state.
ALTER TABLE product_taxes DROP COLUMN icms_cst;
ALTER TABLE product_taxes DROP COLUMN icms_rate_bp;
ALTER TABLE product_taxes DROP COLUMN icms_st_rate_bp;
ALTER TABLE product_taxes DROP COLUMN icms_retained;
ALTER TABLE product_taxes DROP COLUMN fcp_rate_bp;
ALTER TABLE product_taxes DROP COLUMN pis_cst;
ALTER TABLE product_taxes DROP COLUMN pis_rate_bp;
ALTER TABLE product_taxes DROP COLUMN cofins_cst;
ALTER TABLE product_taxes DROP COLUMN cofins_rate_bp;

-- icms_by_state (ICE): ICMS of a product in a state (UF)
CREATE TABLE icms_by_state (
    product_code TEXT NOT NULL,
    uf TEXT NOT NULL,
    icms_cst TEXT NOT NULL,
    icms_rate_bp INTEGER NOT NULL,
    base_reduction_bp INTEGER,
    fcp_rate_bp INTEGER,
    cfop TEXT,
    PRIMARY KEY (product_code, uf)
) WITHOUT ROWID;

-- pis_cofins (PCF): PIS and COFINS of a product
CREATE TABLE pis_cofins (
    product_code TEXT NOT NULL,
    pis_cst TEXT NOT NULL,
    pis_rate_bp INTEGER,
    cofins_cst TEXT NOT NULL,
    cofins_rate_bp INTEGER,
    PRIMARY KEY (product_code)
) WITHOUT ROWID;

-- icms_st_retained (ICR): ICMS ST retained earlier in the chain
CREATE TABLE icms_st_retained (
    product_code TEXT NOT NULL,
    uf TEXT NOT NULL,
    st_base INTEGER,
    icms_st_rate_bp INTEGER,
    icms_retained INTEGER,
    PRIMARY KEY (product_code, uf)
) WITHOUT ROWID;

-- fcp_balance (FCP): FCP on ST retained
CREATE TABLE fcp_balance (
    product_code TEXT NOT NULL,
    uf TEXT NOT NULL,
    fcp_st_rate_bp INTEGER,
    fcp_retained INTEGER,
    PRIMARY KEY (product_code, uf)
) WITHOUT ROWID;
