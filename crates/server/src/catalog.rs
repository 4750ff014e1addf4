//! A synthetic, deterministic catalog for demos, tests and benchmarks,
//! written straight into the central's database through the import path
//! (`import::apply`), in chunked transactions.
//!
//! Same spec (and seed) → same rows, byte for byte. Product `i` (1-based) has
//! code `i`, two EAN-13 barcodes (`789` + 9 digits + check digit; the second
//! one is a box of 12), a `base` price, a `product_taxes` row, its ICMS in SP
//! and RJ, PIS/COFINS (and ST retained and FCP when it is under
//! substitution) and, with
//! `stock`, a stock row per store. Customers have valid CPFs. Small reference
//! lists (states, cities, NCM, payment methods, …) come along, published by
//! node `master`, public. Stock and the store setup are each store's own
//! (`Resolution::Own`): they are written for the stores that exist when the
//! catalog is generated, under each store's node.

use std::path::Path;
use std::time::{Duration, Instant};

use loja_protocol::check::{cnpj_check_digits, cpf_check_digits, gtin_check_digit};
use loja_protocol::{Op, entity_named};
use serde_json::{Map, Value, json};

use crate::ServerError;
use crate::db::Db;
use crate::import::{self, Change};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSpec {
    pub products: u64,
    pub customers: u64,
    /// A stock row per product for every store node already in the database.
    pub stock: bool,
    pub seed: u64,
}

impl Default for CatalogSpec {
    fn default() -> Self {
        CatalogSpec {
            products: 1_000,
            customers: 500,
            stock: true,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenReport {
    /// Rows written per entity, in load order.
    pub entities: Vec<(String, u64)>,
    pub rows: u64,
    pub last_seq: u64,
    pub elapsed: Duration,
}

/// Rows per transaction.
const CHUNK: usize = 20_000;

/// A small, fast, deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const UPDATED_AT: &str = "2026-11-01T00:00:00Z";

/// The states the generated stores are in (alternately): UF, ICMS rate and
/// FCP rate in basis points.
const STATES_SOLD: [(&str, i64, i64); 2] = [("SP", 1800, 0), ("RJ", 2000, 200)];

/// (kind, department, NCM, unit, sizes)
const KINDS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "Arroz",
        "Mercearia",
        "10063021",
        "UN",
        &["1 kg", "2 kg", "5 kg"],
    ),
    (
        "Feijão Carioca",
        "Mercearia",
        "07133319",
        "UN",
        &["500 g", "1 kg"],
    ),
    (
        "Açúcar Refinado",
        "Mercearia",
        "17019900",
        "UN",
        &["1 kg", "2 kg", "5 kg"],
    ),
    (
        "Café Torrado e Moído",
        "Mercearia",
        "09012100",
        "UN",
        &["250 g", "500 g"],
    ),
    (
        "Leite UHT Integral",
        "Laticínios",
        "04012010",
        "UN",
        &["1 L"],
    ),
    ("Óleo de Soja", "Mercearia", "15079011", "UN", &["900 ml"]),
    (
        "Macarrão Espaguete",
        "Mercearia",
        "19021900",
        "UN",
        &["500 g", "1 kg"],
    ),
    (
        "Biscoito Recheado",
        "Mercearia",
        "19053100",
        "UN",
        &["130 g", "200 g"],
    ),
    (
        "Sabão em Pó",
        "Limpeza",
        "34025000",
        "UN",
        &["800 g", "1,6 kg"],
    ),
    (
        "Detergente Líquido",
        "Limpeza",
        "34022000",
        "UN",
        &["500 ml"],
    ),
    (
        "Refrigerante",
        "Bebidas",
        "22021000",
        "UN",
        &["350 ml", "2 L"],
    ),
    (
        "Suco de Uva",
        "Bebidas",
        "20098990",
        "UN",
        &["1 L", "1,5 L"],
    ),
    (
        "Água Mineral",
        "Bebidas",
        "22011000",
        "UN",
        &["500 ml", "1,5 L"],
    ),
    (
        "Cerveja Pilsen",
        "Bebidas",
        "22030000",
        "UN",
        &["350 ml", "600 ml"],
    ),
    (
        "Chocolate ao Leite",
        "Doces",
        "18063210",
        "UN",
        &["90 g", "150 g"],
    ),
    (
        "Farinha de Trigo",
        "Mercearia",
        "11010010",
        "UN",
        &["1 kg", "5 kg"],
    ),
    ("Sal Refinado", "Mercearia", "25010020", "UN", &["1 kg"]),
    ("Molho de Tomate", "Mercearia", "21032010", "UN", &["340 g"]),
    (
        "Papel Higiênico",
        "Higiene",
        "48181000",
        "UN",
        &["4 rolos", "12 rolos"],
    ),
    ("Shampoo", "Higiene", "33051000", "UN", &["350 ml"]),
    ("Creme Dental", "Higiene", "33061000", "UN", &["90 g"]),
    (
        "Iogurte Natural",
        "Laticínios",
        "04032000",
        "UN",
        &["170 g"],
    ),
    ("Queijo Mussarela", "Frios", "04069010", "KG", &["kg"]),
    ("Presunto Cozido", "Frios", "16024900", "KG", &["kg"]),
    (
        "Margarina",
        "Laticínios",
        "15171000",
        "UN",
        &["250 g", "500 g"],
    ),
    ("Banana Prata", "Hortifruti", "08030000", "KG", &["kg"]),
    ("Tomate", "Hortifruti", "07020000", "KG", &["kg"]),
    ("Peito de Frango", "Açougue", "02071400", "KG", &["kg"]),
    ("Carne Bovina Patinho", "Açougue", "02013000", "KG", &["kg"]),
    (
        "Fralda Descartável",
        "Higiene",
        "96190000",
        "UN",
        &["P", "M", "G"],
    ),
];

const BRANDS: &[&str] = &[
    "Bom Gosto",
    "Sabor do Campo",
    "Vale Verde",
    "Estrela",
    "Primor",
    "Boa Safra",
    "Tropical",
    "Serrana",
    "Aurora",
    "Real",
    "Nativa",
    "Dona Clara",
    "Ouro Fino",
    "Mar Azul",
    "Santa Luzia",
    "Paulista",
];

const STATES: &[(&str, &str, i64)] = &[
    ("RO", "Rondônia", 11),
    ("AC", "Acre", 12),
    ("AM", "Amazonas", 13),
    ("RR", "Roraima", 14),
    ("PA", "Pará", 15),
    ("AP", "Amapá", 16),
    ("TO", "Tocantins", 17),
    ("MA", "Maranhão", 21),
    ("PI", "Piauí", 22),
    ("CE", "Ceará", 23),
    ("RN", "Rio Grande do Norte", 24),
    ("PB", "Paraíba", 25),
    ("PE", "Pernambuco", 26),
    ("AL", "Alagoas", 27),
    ("SE", "Sergipe", 28),
    ("BA", "Bahia", 29),
    ("MG", "Minas Gerais", 31),
    ("ES", "Espírito Santo", 32),
    ("RJ", "Rio de Janeiro", 33),
    ("SP", "São Paulo", 35),
    ("PR", "Paraná", 41),
    ("SC", "Santa Catarina", 42),
    ("RS", "Rio Grande do Sul", 43),
    ("MS", "Mato Grosso do Sul", 50),
    ("MT", "Mato Grosso", 51),
    ("GO", "Goiás", 52),
    ("DF", "Distrito Federal", 53),
];

const CITIES: &[(i64, &str, &str)] = &[
    (1100205, "Porto Velho", "RO"),
    (1200401, "Rio Branco", "AC"),
    (1302603, "Manaus", "AM"),
    (1400100, "Boa Vista", "RR"),
    (1501402, "Belém", "PA"),
    (1600303, "Macapá", "AP"),
    (1721000, "Palmas", "TO"),
    (2111300, "São Luís", "MA"),
    (2211001, "Teresina", "PI"),
    (2304400, "Fortaleza", "CE"),
    (2303709, "Caucaia", "CE"),
    (2408102, "Natal", "RN"),
    (2507507, "João Pessoa", "PB"),
    (2611606, "Recife", "PE"),
    (2607901, "Jaboatão dos Guararapes", "PE"),
    (2704302, "Maceió", "AL"),
    (2800308, "Aracaju", "SE"),
    (2927408, "Salvador", "BA"),
    (2910800, "Feira de Santana", "BA"),
    (3106200, "Belo Horizonte", "MG"),
    (3170206, "Uberlândia", "MG"),
    (3118601, "Contagem", "MG"),
    (3136702, "Juiz de Fora", "MG"),
    (3205309, "Vitória", "ES"),
    (3304557, "Rio de Janeiro", "RJ"),
    (3303302, "Niterói", "RJ"),
    (3301702, "Duque de Caxias", "RJ"),
    (3303500, "Nova Iguaçu", "RJ"),
    (3550308, "São Paulo", "SP"),
    (3509502, "Campinas", "SP"),
    (3548500, "Santos", "SP"),
    (3518800, "Guarulhos", "SP"),
    (3534401, "Osasco", "SP"),
    (3552205, "Sorocaba", "SP"),
    (3543402, "Ribeirão Preto", "SP"),
    (3549904, "São José dos Campos", "SP"),
    (3547809, "Santo André", "SP"),
    (3548708, "São Bernardo do Campo", "SP"),
    (3525904, "Jundiaí", "SP"),
    (4106902, "Curitiba", "PR"),
    (4113700, "Londrina", "PR"),
    (4115200, "Maringá", "PR"),
    (4205407, "Florianópolis", "SC"),
    (4209102, "Joinville", "SC"),
    (4202404, "Blumenau", "SC"),
    (4314902, "Porto Alegre", "RS"),
    (4305108, "Caxias do Sul", "RS"),
    (4314407, "Pelotas", "RS"),
    (5002704, "Campo Grande", "MS"),
    (5103403, "Cuiabá", "MT"),
    (5208707, "Goiânia", "GO"),
    (5201405, "Aparecida de Goiânia", "GO"),
    (5300108, "Brasília", "DF"),
];

const FIRST_NAMES: &[&str] = &[
    "Ana",
    "Maria",
    "João",
    "José",
    "Pedro",
    "Paulo",
    "Lucas",
    "Mariana",
    "Fernanda",
    "Juliana",
    "Carlos",
    "Rafael",
    "Beatriz",
    "Camila",
    "Gabriel",
    "Larissa",
    "Bruno",
    "Patrícia",
    "Rodrigo",
    "Aline",
];
const LAST_NAMES: &[&str] = &[
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
];

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// EAN-13 for a 12-digit body number.
fn ean13(body: u64) -> String {
    let text = format!("{:012}", body % 1_000_000_000_000);
    let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    format!("{text}{}", gtin_check_digit(&digits))
}

/// A valid CPF for a 9-digit body number (skipping all-equal bodies is the caller's job).
fn cpf(body: u64) -> String {
    let text = format!("{:09}", body % 1_000_000_000);
    let mut nine = [0u8; 9];
    for (d, b) in nine.iter_mut().zip(text.bytes()) {
        *d = b - b'0';
    }
    let [a, b] = cpf_check_digits(&nine);
    format!("{text}{a}{b}")
}

/// The i-th CPF body of a customer list: unique, never all-equal digits.
fn customer_cpf(i: u64) -> String {
    let mut body = 100_000_000 + i;
    let t = format!("{body:09}");
    if t.bytes().all(|b| b == t.as_bytes()[0]) {
        body += 900_000_000 / 2;
    }
    cpf(body)
}

struct Writer<'a> {
    db: &'a Db,
    report: GenReport,
}

impl Writer<'_> {
    /// Applies rows of one entity in chunked transactions, through the
    /// import path, owned by the master.
    fn rows(
        &mut self,
        entity: &str,
        rows: impl Iterator<Item = Map<String, Value>>,
    ) -> Result<(), ServerError> {
        self.rows_at(entity, None, rows)
    }

    /// [`Writer::rows`] owned by `node` (a store's own rows).
    fn rows_at(
        &mut self,
        entity: &str,
        node: Option<&str>,
        rows: impl Iterator<Item = Map<String, Value>>,
    ) -> Result<(), ServerError> {
        let e = import::entity(entity)?;
        let mut count = 0u64;
        let mut chunk: Vec<Change> = Vec::with_capacity(CHUNK);
        let mut flush = |chunk: &mut Vec<Change>| -> Result<(), ServerError> {
            if chunk.is_empty() {
                return Ok(());
            }
            let applied = self.db.write(|tx| import::apply(tx, e, chunk))?;
            self.report.last_seq = applied.last_seq;
            chunk.clear();
            Ok(())
        };
        for row in rows {
            count += 1;
            e.validate_row(&row)
                .map_err(|err| generator_bug(entity, count, err))?;
            chunk.push(Change {
                line: count,
                node: node.map(str::to_owned),
                public: None,
                op: Op::Upsert,
                row,
            });
            if chunk.len() == CHUNK {
                flush(&mut chunk)?;
            }
        }
        flush(&mut chunk)?;
        self.report.rows += count;
        match self.report.entities.last_mut() {
            Some((last, n)) if last == entity => *n += count,
            _ => self.report.entities.push((entity.to_owned(), count)),
        }
        Ok(())
    }
}

fn generator_bug(entity: &str, n: u64, err: loja_protocol::FieldError) -> ServerError {
    ServerError::Invalid(format!("generator bug: {entity} row {n}: {err}"))
}

/// Writes the catalog of `spec` into the database at `db` (created if needed).
pub fn generate(db: &Path, spec: &CatalogSpec) -> Result<GenReport, ServerError> {
    generate_into(&Db::open(db)?, spec)
}

/// [`generate`] into an open database, either backend.
pub fn generate_into(db: &Db, spec: &CatalogSpec) -> Result<GenReport, ServerError> {
    let started = Instant::now();
    let mut w = Writer {
        db,
        report: GenReport {
            entities: Vec::new(),
            rows: 0,
            last_seq: 0,
            elapsed: Duration::ZERO,
        },
    };
    let seed = spec.seed;
    let stores = store_ids(db)?;
    if spec.stock && stores.is_empty() {
        return Err(ServerError::Invalid(
            "stock rows belong to a store and there is no store yet: add the stores first \
             (`retaguarda-server node add --kind store …`), then generate"
                .into(),
        ));
    }

    w.rows(
        "states",
        STATES
            .iter()
            .map(|(uf, name, code)| obj(json!({"uf": uf, "name": name, "ibge_code": code}))),
    )?;
    w.rows(
        "cities",
        CITIES
            .iter()
            .map(|(code, name, uf)| obj(json!({"ibge_code": code, "name": name, "uf": uf}))),
    )?;
    w.rows(
        "ncm",
        KINDS.iter().enumerate().map(|(i, (kind, _, ncm, _, _))| {
            obj(json!({"code": ncm, "description": kind, "federal_rate_bp": 1200 + (i as i64 % 7) * 150,
                       "state_rate_bp": 1800, "municipal_rate_bp": 0}))
        }),
    )?;

    // Products and everything hanging off them: each entity re-derives the
    // product's attributes from (seed, i), so they agree without a shared table.
    let product = |i: u64| {
        let mut r = Rng(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
        let k = r.below(KINDS.len() as u64) as usize;
        let brand = *r.pick(BRANDS);
        let sizes = KINDS[k].4;
        let s = r.below(sizes.len() as u64) as usize;
        let size = sizes[s];
        // A shelf price that looks like one: a per-kind base (R$ 2.99 to
        // R$ 27.99), larger sizes dearer, ±20 % between brands.
        let base = 299 + (k as i64 * 397) % 2_500;
        let price = base * (s as i64 + 1) * (80 + r.below(41) as i64) / 100;
        (k, brand, size, price, r)
    };
    let n = spec.products;
    w.rows(
        "products",
        (1..=n).map(|i| {
            let (k, brand, size, _, _) = product(i);
            let (kind, dept, ncm, unit, _) = KINDS[k];
            obj(json!({
                "code": i.to_string(), "name": format!("{kind} {brand} {size}"), "unit": unit, "ncm": ncm,
                "brand": brand, "department": dept, "is_kit": false, "weighable": unit == "KG",
                "active": true, "updated_at": UPDATED_AT,
            }))
        }),
    )?;
    w.rows(
        "barcodes",
        (1..=n).flat_map(|i| {
            (0..2u64).map(move |j| {
                obj(json!({
                    "barcode": ean13(789_000_000_000 + (i * 2 + j) % 1_000_000_000),
                    "product_code": i.to_string(),
                    "pack_qty": if j == 0 { 1_000 } else { 12_000 },
                }))
            })
        }),
    )?;
    w.rows(
        "prices",
        (1..=n).map(|i| {
            let (_, _, _, price, mut r) = product(i);
            let mut row = obj(
                json!({"product_code": i.to_string(), "price_list": "base", "price": price,
                                     "updated_at": UPDATED_AT}),
            );
            if r.below(10) == 0 {
                row.insert("promo_price".into(), json!(price * 9 / 10));
                row.insert("promo_until".into(), json!("2099-12-31T23:59:59Z"));
            }
            row
        }),
    )?;
    w.rows(
        "product_taxes",
        (1..=n).map(|i| {
            let (k, _, _, _, _) = product(i);
            let ncm = KINDS[k].2;
            let tribute = ["T18", "T12", "F", "T07"][k % 4];
            obj(json!({"product_code": i.to_string(), "ecf_tribute": tribute, "ncm": ncm, "cfop": "5102"}))
        }),
    )?;
    // ICMS in the two states the stores are in (store_setup `uf`): SP at
    // 18 %, RJ at 20 % plus 2 % FCP; products under substitution (CST 60)
    // carry the ST retained earlier in the chain instead.
    w.rows(
        "icms_by_state",
        (1..=n).flat_map(|i| {
            let (k, _, _, _, _) = product(i);
            STATES_SOLD.iter().map(move |(uf, rate, fcp)| {
                let (cst, rate, reduction) = match k % 4 {
                    2 => ("60", 0, 0),
                    3 => ("20", *rate, 3333),
                    _ => ("00", *rate, 0),
                };
                obj(json!({"product_code": i.to_string(), "uf": uf, "icms_cst": cst, "icms_rate_bp": rate,
                           "base_reduction_bp": reduction, "fcp_rate_bp": fcp, "cfop": if cst == "60" { "5405" } else { "5102" }}))
            })
        }),
    )?;
    w.rows(
        "pis_cofins",
        (1..=n).map(|i| {
            obj(
                json!({"product_code": i.to_string(), "pis_cst": "01", "pis_rate_bp": 165,
                       "cofins_cst": "01", "cofins_rate_bp": 760}),
            )
        }),
    )?;
    w.rows(
        "icms_st_retained",
        (1..=n)
            .filter(|i| product(*i).0 % 4 == 2)
            .flat_map(|i| {
                let (_, _, _, price, _) = product(i);
                STATES_SOLD.iter().map(move |(uf, rate, _)| {
                    let base = price * 14 / 10;
                    obj(json!({"product_code": i.to_string(), "uf": uf, "st_base": base,
                               "icms_st_rate_bp": rate, "icms_retained": base * rate / 10_000 - price * 12 / 100}))
                })
            }),
    )?;
    w.rows(
        "fcp_balance",
        (1..=n).filter(|i| product(*i).0 % 4 == 2).flat_map(|i| {
            let (_, _, _, price, _) = product(i);
            STATES_SOLD
                .iter()
                .filter(|(_, _, fcp)| *fcp > 0)
                .map(move |(uf, _, fcp)| {
                    obj(
                        json!({"product_code": i.to_string(), "uf": uf, "fcp_st_rate_bp": fcp,
                                   "fcp_retained": price * 14 / 10 * fcp / 10_000}),
                    )
                })
        }),
    )?;
    if spec.stock {
        for (s, store) in stores.iter().enumerate() {
            w.rows_at(
                "stock",
                Some(store),
                (1..=n).map(|i| {
                    let (_, _, _, _, mut r) = product(i ^ (s as u64) << 40);
                    obj(json!({"product_code": i.to_string(), "qty": (r.below(500) as i64) * 1000, "updated_at": UPDATED_AT}))
                }),
            )?;
        }
    }
    w.rows(
        "customers",
        (1..=spec.customers).map(|i| {
            let mut r = Rng(seed ^ 0x5EED ^ i.wrapping_mul(0x9E37_79B9));
            let first = *r.pick(FIRST_NAMES);
            let last = *r.pick(LAST_NAMES);
            let last2 = *r.pick(LAST_NAMES);
            let (code, _, uf) = *r.pick(CITIES);
            obj(json!({
                "document": customer_cpf(i), "name": format!("{first} {last} {last2}"),
                "email": format!("{}.{}{}@example.com.br", first.to_lowercase(), last.to_lowercase(), i),
                "phone": format!("11{:09}", 900_000_000 + r.below(99_999_999)),
                "birth_date": format!("{}-{:02}-{:02}", 1950 + r.below(55), 1 + r.below(12), 1 + r.below(28)),
                "city_ibge_code": code, "uf": uf, "credit_limit": (r.below(50) as i64) * 10_000,
                "lgpd_consent": r.below(3) != 0, "updated_at": UPDATED_AT,
            }))
        }),
    )?;

    reference_lists(&mut w)?;
    for (s, store) in stores.iter().enumerate() {
        w.rows_at(
            "store_setup",
            Some(store),
            store_setup(store, s as u64).into_iter(),
        )?;
    }
    w.report.elapsed = started.elapsed();
    Ok(w.report)
}

fn reference_lists(w: &mut Writer<'_>) -> Result<(), ServerError> {
    let rows = |v: Value| -> Vec<Map<String, Value>> {
        match v {
            Value::Array(a) => a.into_iter().map(obj).collect(),
            _ => Vec::new(),
        }
    };
    w.rows(
        "payment_methods",
        rows(json!([
            {"code": "CASH", "description": "Dinheiro", "kind": "cash", "tef": false, "gives_change": true, "active": true},
            {"code": "CREDIT", "description": "Cartão de crédito", "kind": "credit_card", "tef": true, "gives_change": false, "active": true},
            {"code": "DEBIT", "description": "Cartão de débito", "kind": "debit_card", "tef": true, "gives_change": false, "active": true},
            {"code": "PIX", "description": "PIX", "kind": "pix", "tef": false, "gives_change": false, "active": true},
            {"code": "VOUCHER", "description": "Vale-alimentação", "kind": "voucher", "tef": true, "gives_change": false, "active": true},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "discount_reasons",
        rows(json!([
            {"code": "01", "description": "Produto avariado", "active": true},
            {"code": "02", "description": "Cliente fidelidade", "active": true},
            {"code": "03", "description": "Validade próxima", "active": true},
            {"code": "04", "description": "Cobertura de preço da concorrência", "active": true},
            {"code": "05", "description": "Cortesia da gerência", "active": true},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "return_reasons",
        rows(json!([
            {"code": "01", "description": "Defeito de fabricação", "restock": false, "omni": false, "active": true},
            {"code": "02", "description": "Arrependimento (troca)", "restock": true, "omni": false, "active": true},
            {"code": "03", "description": "Produto diferente do pedido", "restock": true, "omni": true, "active": true},
            {"code": "04", "description": "Avaria no transporte", "restock": false, "omni": true, "active": true},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "discount_types",
        rows(json!([
            {"code": "ITEM", "description": "Desconto no item", "max_percent_bp": 1000, "needs_authorization": false},
            {"code": "SUBTOTAL", "description": "Desconto no subtotal", "max_percent_bp": 500, "needs_authorization": true},
            {"code": "GERENTE", "description": "Desconto autorizado pelo gerente", "max_percent_bp": 3000, "needs_authorization": true},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "employees",
        (1..=10u64).map(|i| {
            let roles = ["operator", "operator", "operator", "operator", "operator", "operator", "supervisor", "supervisor", "manager", "operator"];
            obj(json!({"code": format!("{i:03}"), "name": format!("{} {}", FIRST_NAMES[i as usize % FIRST_NAMES.len()],
                       LAST_NAMES[(i as usize * 7) % LAST_NAMES.len()]), "cpf": cpf(200_000_000 + i * 1_234),
                       "role": roles[(i - 1) as usize], "active": true}))
        }),
    )?;
    w.rows(
        "sale_modalities",
        rows(json!([
            {"code": "BALCAO", "description": "Venda no balcão"},
            {"code": "ENTREGA", "description": "Entrega em domicílio"},
            {"code": "RETIRA", "description": "Compre e retire"},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "sales_channels",
        rows(json!([
            {"code": "LOJA", "description": "Loja física"},
            {"code": "SITE", "description": "Loja virtual"},
            {"code": "APP", "description": "Aplicativo"},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "parameters",
        rows(json!([
            {"name": "max_discount_bp", "value": "1000"},
            {"name": "cash_withdrawal_limit", "value": "50000"},
            {"name": "ask_customer_document", "value": "true"},
            {"name": "receipt_footer", "value": "Obrigado pela preferência!"},
            {"name": "nfce_environment", "value": "homologacao"},
            {"name": "sale_timeout_minutes", "value": "30"},
            {"name": "allow_negative_stock", "value": "true"},
            {"name": "loyalty_enabled", "value": "false"},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "lgpd_letters",
        rows(json!([
            {"version": 1, "published_at": "2026-01-01T00:00:00Z",
             "text": "Autorizo o tratamento dos meus dados pessoais para fins de cadastro, emissão de documentos fiscais e ofertas, nos termos da Lei 13.709/2018 (LGPD)."},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "lgpd_config",
        rows(json!([
            {"name": "current_letter_version", "value": "1"},
            {"name": "ask_consent_at_signup", "value": "true"},
        ]))
        .into_iter(),
    )?;
    w.rows(
        "promotions",
        rows(json!([
            {"code": "PROMO-LEVE3PAGUE2", "name": "Leve 3 pague 2 em biscoitos", "starts_at": "2020-01-01T00:00:00Z",
             "ends_at": "2099-12-31T23:59:59Z", "rule": {"kind": "take_n_pay_m", "department": "Mercearia", "take": 3, "pay": 2},
             "active": true},
        ]))
        .into_iter(),
    )?;
    Ok(())
}

/// The store nodes, by id.
fn store_ids(db: &Db) -> Result<Vec<String>, ServerError> {
    let nodes = db.read(|c| crate::nodes::list(c).map_err(crate::DbError::from))?;
    Ok(nodes
        .into_iter()
        .filter(|n| n.kind == crate::nodes::NodeKind::Store)
        .map(|n| n.id)
        .collect())
}

/// A store's own setup: its company data (one CNPJ branch per store).
fn store_setup(store: &str, i: u64) -> Vec<Map<String, Value>> {
    let uf = STATES_SOLD[i as usize % STATES_SOLD.len()].0;
    let address = if uf == "SP" {
        "Av. Paulista, 1000 - São Paulo/SP"
    } else {
        "Av. Rio Branco, 100 - Rio de Janeiro/RJ"
    };
    // Root 11.222.333, branch 00NN: every store a branch of the same company.
    let body = format!("1122233300{:02}", (i + 1) % 100);
    let mut twelve = [0u8; 12];
    for (d, b) in twelve.iter_mut().zip(body.bytes()) {
        *d = b - b'0';
    }
    let [a, b] = cnpj_check_digits(&twelve);
    let cnpj = format!("{body}{a}{b}");
    [
        ("company_name", "Supermercados Exemplo Ltda".to_owned()),
        ("store_name", format!("Loja {store}")),
        ("cnpj", cnpj),
        ("state_registration", "110042490114".to_owned()),
        ("address", address.to_owned()),
        ("uf", uf.to_owned()),
        ("tax_regime", "normal".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| obj(json!({"name": name, "value": value})))
    .collect()
}

/// Lists what [`generate`] writes, for `--help` and docs.
pub fn entities_written(spec: &CatalogSpec) -> Vec<&'static str> {
    let mut v = vec![
        "states",
        "cities",
        "ncm",
        "products",
        "barcodes",
        "prices",
        "product_taxes",
        "icms_by_state",
        "pis_cofins",
        "icms_st_retained",
        "fcp_balance",
    ];
    if spec.stock {
        v.push("stock");
    }
    v.extend([
        "customers",
        "payment_methods",
        "discount_reasons",
        "return_reasons",
        "discount_types",
        "employees",
        "sale_modalities",
        "sales_channels",
        "parameters",
        "lgpd_letters",
        "lgpd_config",
        "promotions",
        "store_setup",
    ]);
    debug_assert!(v.iter().all(|e| entity_named(e).is_some()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid() {
        for i in 0..2000 {
            assert_eq!(
                loja_protocol::check::gtin(&ean13(789_000_000_000 + i)),
                Ok(())
            );
            assert_eq!(loja_protocol::check::cpf(&customer_cpf(i)), Ok(()));
        }
        assert_eq!(loja_protocol::check::cpf(&customer_cpf(11_111_111)), Ok(()));
    }

    #[test]
    fn deterministic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let spec = CatalogSpec {
            products: 50,
            customers: 20,
            stock: true,
            seed: 7,
        };
        let dbs: Vec<Db> = ["a", "b"]
            .iter()
            .map(|name| {
                let own = dir.path().join(name);
                std::fs::create_dir_all(&own).unwrap();
                Db::for_tests(&own)
            })
            .collect();
        for db in &dbs {
            db.write(|tx| {
                for (id, token) in [("loja-a", "token-loja-a"), ("loja-b", "token-loja-b")] {
                    let node = crate::nodes::NewNode {
                        id: id.into(),
                        parent: "master".into(),
                        kind: crate::nodes::NodeKind::Store,
                        token: Some(token.into()),
                    };
                    crate::nodes::upsert_node(tx, &node).unwrap();
                }
                Ok::<_, crate::DbError>(())
            })
            .unwrap();
        }
        let a = generate_into(&dbs[0], &spec).unwrap();
        let b = generate_into(&dbs[1], &spec).unwrap();
        assert_eq!(a.entities, b.entities);
        assert_eq!(
            a.entities
                .iter()
                .map(|(e, _)| e.as_str())
                .collect::<Vec<_>>(),
            entities_written(&spec)
        );
        let count = |e: &str| a.entities.iter().find(|(n, _)| n == e).map(|(_, c)| *c);
        assert_eq!(count("barcodes"), Some(100));
        assert_eq!(count("stock"), Some(100), "50 products at each of 2 stores");
        assert_eq!(count("states"), Some(27));
        let dump = |db: &Db| -> Vec<String> {
            db.read(|c| {
                let mut s =
                    c.prepare("SELECT entity || key_text || data FROM rows ORDER BY seq")?;
                s.query_map(params![], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(crate::DbError::from)
            })
            .unwrap()
        };
        assert_eq!(dump(&dbs[0]), dump(&dbs[1]));
        // Running it again changes nothing (identical upserts take no sequence).
        let again = generate_into(&dbs[0], &spec).unwrap();
        assert_eq!(again.last_seq, a.last_seq);
    }
}
