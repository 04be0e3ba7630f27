//! The HTTP ceiling of `scripts/bench-load`: actix-web answering `GET /` with an empty 200 and
//! nothing else (no middleware, no state). `empty-http 127.0.0.1:18081 [workers]`.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let mut server =
        HttpServer::new(|| App::new().route("/", web::get().to(HttpResponse::Ok))).bind(listen)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    server.run().await
}
