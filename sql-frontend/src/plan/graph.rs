//! Building job graphs: the planner adds one node per operator and connects them; [`build`]
//! chains forward edges between nodes of equal parallelism into one vertex (one task per
//! subtask), as Flink does, and turns forward edges between unequal parallelisms into
//! rebalance edges.
//!
//! [`build`]: JobGraphBuilder::build

use std::collections::BTreeMap;

use sluice_proto::{Edge, JobGraph, OperatorSpec, Partitioning, Vertex};

/// Index of a node added to a [`JobGraphBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

struct Node {
    operator: OperatorSpec,
    parallelism: u32,
}

struct NodeEdge {
    from: NodeId,
    to: NodeId,
    partitioning: Partitioning,
    key_columns: Vec<u32>,
    schema: Vec<u8>,
    /// The input of `to` it feeds.
    input: u32,
}

/// Collects operators and edges, then chains them into a [`JobGraph`].
#[derive(Default)]
pub struct JobGraphBuilder {
    nodes: Vec<Node>,
    edges: Vec<NodeEdge>,
}

impl JobGraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operator running at `parallelism`. Nodes must be added sources first
    /// (every edge goes from an earlier node to a later one).
    pub fn add(&mut self, mut operator: OperatorSpec, parallelism: u32) -> NodeId {
        if operator.uid.is_empty() {
            operator.uid = format!("{}-{}", self.nodes.len(), operator.name.split(['(', ' ']).next().unwrap_or("op"));
        }
        self.nodes.push(Node { operator, parallelism: parallelism.max(1) });
        NodeId(self.nodes.len() - 1)
    }

    /// The stable identity of a node's operator (its `uid`).
    pub fn uid(&self, node: NodeId) -> &str {
        &self.nodes[node.0].operator.uid
    }

    /// The source operators whose rows reach `node` (itself, when it is one).
    pub fn sources_of(&self, node: NodeId) -> Vec<&OperatorSpec> {
        let mut sources = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![node.0];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            let operator = &self.nodes[n].operator;
            if matches!(operator.kind, Some(sluice_proto::operator_spec::Kind::Source(_))) {
                sources.push(operator);
            }
            stack.extend(self.edges.iter().filter(|e| e.to.0 == n).map(|e| e.from.0));
        }
        sources
    }

    /// Connects two nodes; `schema` is the Arrow IPC schema of the rows on the edge.
    pub fn connect(
        &mut self,
        from: NodeId,
        to: NodeId,
        partitioning: Partitioning,
        key_columns: Vec<u32>,
        schema: Vec<u8>,
    ) {
        self.connect_input(from, to, partitioning, key_columns, schema, 0);
    }

    /// Connects `from` to input `input` of `to` (1: the second input of a join).
    pub fn connect_input(
        &mut self,
        from: NodeId,
        to: NodeId,
        partitioning: Partitioning,
        key_columns: Vec<u32>,
        schema: Vec<u8>,
        input: u32,
    ) {
        assert!(from.0 < to.0, "edges go from earlier nodes to later ones");
        self.edges.push(NodeEdge { from, to, partitioning, key_columns, schema, input });
    }

    fn chainable(&self, edge: &NodeEdge) -> bool {
        edge.partitioning == Partitioning::Forward
            && self.nodes[edge.from.0].parallelism == self.nodes[edge.to.0].parallelism
            && self.edges.iter().filter(|e| e.from == edge.from).count() == 1
            && self.edges.iter().filter(|e| e.to == edge.to).count() == 1
    }

    /// Chains the nodes into vertices and returns the job graph.
    pub fn build(self, name: &str, config: BTreeMap<String, String>) -> JobGraph {
        // vertex_of[n]: the vertex node n belongs to. Nodes are in topological order, so a
        // node chained to its predecessor joins the predecessor's vertex.
        let mut vertex_of: Vec<u32> = Vec::with_capacity(self.nodes.len());
        let mut vertices: Vec<Vertex> = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            let chained_from = self.edges.iter().find(|e| e.to.0 == index && self.chainable(e)).map(|e| e.from.0);
            match chained_from {
                Some(prev) => {
                    let v = vertex_of[prev];
                    vertex_of.push(v);
                    let vertex = &mut vertices[v as usize];
                    vertex.name = format!("{} -> {}", vertex.name, node.operator.name);
                    vertex.operators.push(node.operator.clone());
                }
                None => {
                    let id = vertices.len() as u32;
                    vertex_of.push(id);
                    vertices.push(Vertex {
                        id,
                        name: node.operator.name.clone(),
                        parallelism: node.parallelism,
                        operators: vec![node.operator.clone()],
                    });
                }
            }
        }
        let edges = self
            .edges
            .iter()
            .filter(|e| vertex_of[e.from.0] != vertex_of[e.to.0])
            .map(|e| {
                let unequal = self.nodes[e.from.0].parallelism != self.nodes[e.to.0].parallelism;
                let partitioning = if e.partitioning == Partitioning::Forward && unequal {
                    Partitioning::Rebalance
                } else {
                    e.partitioning
                };
                Edge {
                    source_vertex: vertex_of[e.from.0],
                    target_vertex: vertex_of[e.to.0],
                    partitioning: partitioning as i32,
                    key_columns: e.key_columns.clone(),
                    schema: e.schema.clone(),
                    target_input: e.input,
                }
            })
            .collect();
        JobGraph {
            name: name.to_string(),
            vertices,
            edges,
            config: config.into_iter().collect(),
            explain: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::job_graph::check;

    fn op(name: &str) -> OperatorSpec {
        OperatorSpec { uid: String::new(), name: name.into(), kind: None }
    }

    #[test]
    fn forward_edges_of_equal_parallelism_chain() {
        let mut b = JobGraphBuilder::new();
        let src = b.add(op("source"), 4);
        let proj = b.add(op("project"), 4);
        let agg = b.add(op("aggregate"), 4);
        let sink = b.add(op("sink"), 4);
        let slow = b.add(op("slow sink"), 1);
        b.connect(src, proj, Partitioning::Forward, vec![], vec![]);
        b.connect(proj, agg, Partitioning::Hash, vec![0], vec![]);
        b.connect(agg, sink, Partitioning::Forward, vec![], vec![]);
        let g = {
            let mut b2 = b;
            b2.connect(sink, slow, Partitioning::Forward, vec![], vec![]);
            b2.build("job", BTreeMap::new())
        };
        check(&g).unwrap();
        let names: Vec<&str> = g.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["source -> project", "aggregate -> sink", "slow sink"]);
        assert_eq!(g.edges.len(), 2);
        assert_eq!(g.edges[0].partitioning, Partitioning::Hash as i32);
        assert_eq!(g.edges[1].partitioning, Partitioning::Rebalance as i32, "forward across parallelisms rebalances");
    }

    #[test]
    fn a_fan_out_is_not_chained() {
        let mut b = JobGraphBuilder::new();
        let src = b.add(op("source"), 2);
        let a = b.add(op("a"), 2);
        let c = b.add(op("c"), 2);
        b.connect(src, a, Partitioning::Forward, vec![], vec![]);
        b.connect(src, c, Partitioning::Forward, vec![], vec![]);
        let g = b.build("job", BTreeMap::new());
        assert_eq!(g.vertices.len(), 3);
        assert_eq!(g.edges.len(), 2);
    }
}
