fn main() {
    print!("{}", loja_protocol::omni::mapping_table());
}
