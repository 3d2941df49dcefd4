fn main() {
    println!("sum {}", sandboxed::parallel_sum(4, 1000));
}
