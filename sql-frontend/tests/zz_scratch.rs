use sluice_sql::{plan, PlanOptions};
use sluice_operators::schema::decode_schema;
use sluice_proto::operator_spec::Kind;

const T: &str = "CREATE TABLE orders (id BIGINT NOT NULL, customer STRING, amount DOUBLE, quantity INT) WITH ('connector' = 'datagen');
CREATE TABLE out (id BIGINT, customer STRING) WITH ('connector' = 'print');
";

fn show(label: &str, script: &str, p: u32) {
    println!("######## {label}");
    match plan(script, &PlanOptions { default_parallelism: Some(p), job_name: None }) {
        Ok(plan) => {
            println!("{}", plan.explain);
            for v in &plan.graph.vertices { for o in &v.operators {
                match &o.kind {
                    Some(Kind::Calc(c)) => println!("  CALC {} in={:?} out={:?} filter={}", o.name, decode_schema(&c.input_schema).unwrap().fields().iter().map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable())).collect::<Vec<_>>(), decode_schema(&c.output_schema).unwrap().fields().iter().map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable())).collect::<Vec<_>>(), c.filter.is_some()),
                    Some(Kind::KeyedAggregate(a)) => println!("  AGG {} keys={:?} calls={:?} in={:?} out={:?}", o.name, a.key_columns, a.aggregates, decode_schema(&a.input_schema).unwrap().fields().iter().map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable())).collect::<Vec<_>>(), decode_schema(&a.output_schema).unwrap().fields().iter().map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable())).collect::<Vec<_>>()),
                    Some(Kind::Sink(s)) | Some(Kind::Source(s)) => println!("  CONN {} schema={:?} opts={:?}", o.name, decode_schema(&s.schema).unwrap().fields().iter().map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable())).collect::<Vec<_>>(), s.options),
                    Some(Kind::MlPredict(m)) => println!("  ML {} desc={:?} opts={:?} cfg={:?} in={:?} out={:?}", o.name, m.descriptor_columns, m.options, m.config, decode_schema(&m.input_schema).unwrap().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>(), decode_schema(&m.output_schema).unwrap().fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect::<Vec<_>>()),
                    _ => println!("  OP {}", o.name),
                }
            }}
            for e in &plan.graph.edges { println!("  EDGE {}->{} keys={:?} schema={:?}", e.source_vertex, e.target_vertex, e.key_columns, decode_schema(&e.schema).unwrap().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>()); }
        }
        Err(e) => println!("ERROR {}", e.render(script)),
    }
}

#[test]
fn scratch() {
    let file = std::env::var("SCRATCH").unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    for case in text.split("\n%%%") {
        let (head, body) = case.split_once('\n').unwrap();
        let (label, p) = head.trim().split_once(' ').unwrap_or((head.trim(), "1"));
        let body = body.replace("{T}", T);
        show(label, &body, p.trim().parse().unwrap_or(1));
    }
}
