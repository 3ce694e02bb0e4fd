"""Writes openapi.json, the OpenAPI document of the jobmanager's REST API (served at
/openapi.json): python3 jobmanager/src/rest/openapi.py > jobmanager/src/rest/openapi.json

Keep it in step with views.rs; tests/observability.rs checks every answer against it.
"""
import json
num={"type":"number"}; integer={"type":"integer"}; string={"type":"string"}; boolean={"type":"boolean"}
def nullable(s): return {**s,"nullable":True}
def obj(props, required=None, extra=True):
    o={"type":"object","properties":props}
    o["required"]=list(props) if required is None else required
    if not extra: o["additionalProperties"]=False
    return o
def arr(items): return {"type":"array","items":items}
ref=lambda n: {"$ref":f"#/components/schemas/{n}"}
task_counts={"type":"object","required":["total"],"additionalProperties":{"type":"integer"}}
schemas={
 "Error": obj({"errors":arr(string)}),
 "Overview": obj({"taskmanagers":integer,"slots-total":integer,"slots-available":integer,"jobs-running":integer,"jobs-finished":integer,"jobs-cancelled":integer,"jobs-failed":integer,"sluice-version":string}),
 "Config": obj({"sluice-version":string,"refresh-interval":integer,"timezone-name":string,"timezone-offset":integer,"features":obj({"web-submit":boolean,"web-cancel":boolean})}),
 "TaskManagers": obj({"taskmanagers":arr(obj({"id":string,"path":string,"dataPort":integer,"timeSinceLastHeartbeat":integer,"slotsNumber":integer,"freeSlots":integer}))}),
 "Jobs": obj({"jobs":arr(obj({"id":string,"status":ref("JobState")}))}),
 "JobState": {"type":"string","enum":["CREATED","RUNNING","RESTARTING","FINISHED","FAILED","CANCELED"]},
 "TaskState": {"type":"string","enum":["CREATED","DEPLOYING","RUNNING","ENDED","FINISHED","CANCELED","FAILED"]},
 "JobSummary": obj({"jid":string,"name":string,"state":ref("JobState"),"start-time":integer,"end-time":integer,"duration":integer,"last-modification":integer,"tasks":task_counts}),
 "JobsOverview": obj({"jobs":arr(ref("JobSummary"))}),
 "Plan": obj({"jid":string,"name":string,"type":string,"nodes":arr(obj({"id":string,"parallelism":integer,"operator":string,"operator_strategy":string,"description":string,"operators":arr(string),"inputs":arr(obj({"num":integer,"id":string,"ship_strategy":{"type":"string","enum":["FORWARD","HASH","REBALANCE","BROADCAST"]},"exchange":string,"target-input":integer})),"optimizer_properties":{"type":"object"}})),"explain":string}),
 "Subtask": obj({"subtask":integer,"status":ref("TaskState"),"taskmanager-id":string,"read-records":integer,"write-records":integer,"read-bytes":integer,"write-bytes":integer,"records-in-per-second":num,"records-out-per-second":num,"busy-ms-per-second":num,"idle-ms-per-second":num,"backpressured-ms-per-second":num,"watermark":nullable(integer),"input-watermark":nullable(integer),"error":string}),
 "Vertex": obj({"id":string,"name":string,"parallelism":integer,"status":ref("TaskState"),"start-time":integer,"end-time":integer,"duration":integer,"tasks":task_counts,
    "metrics":obj({k:(boolean if k.endswith("complete") else integer) for k in ["read-bytes","read-bytes-complete","write-bytes","write-bytes-complete","read-records","read-records-complete","write-records","write-records-complete","accumulated-backpressured-time","accumulated-idle-time","accumulated-busy-time"]}),
    "rates":obj({k:num for k in ["records-in-per-second","records-out-per-second","busy-ms-per-second","idle-ms-per-second","backpressured-ms-per-second"]}),
    "watermark":nullable(integer),"input-watermark":nullable(integer),"bottleneck":boolean,"subtasks":arr(ref("Subtask"))}),
 "ModelPanel": obj({"model":string,**{k:nullable(num) for k in ["rows","rows-per-second","requests","in-flight","concurrency-limit","latency-p50-ms","latency-p99-ms","recent-latency-p50-ms","recent-latency-p99-ms","retries","http-429","timeouts","failed","dead-letters","cache-hits","cache-hit-rate","prompt-tokens","completion-tokens","cost-usd","cost-per-hour-usd"]},"latency-count":integer}),
 "Job": obj({"jid":string,"name":string,"isStoppable":boolean,"state":ref("JobState"),"message":string,"start-time":integer,"end-time":integer,"duration":integer,"now":integer,"attempt":integer,"restarts":integer,"vertices":arr(ref("Vertex")),"status-counts":{"type":"object","additionalProperties":{"type":"integer"}},"plan":ref("Plan"),"models":arr(ref("ModelPanel"))}),
 "PlanResponse": obj({"plan":ref("Plan")}),
 "Exceptions": obj({"root-exception":nullable(string),"timestamp":nullable(integer),"exceptionHistory":obj({"entries":arr(obj({"exceptionName":{"type":"string","enum":["TaskFailure","JobFailure"]},"stacktrace":string,"timestamp":integer,"restarted":boolean,"concurrentExceptions":arr({})})),"truncated":boolean})}),
 "CheckpointSubtask": obj({"index":integer,"status":string,"ack_timestamp":integer,"end_to_end_duration":integer,"state_size":integer,"checkpointed_size":integer,"checkpoint":obj({"sync":integer,"async":integer}),"alignment":obj({"duration":integer})}),
 "CheckpointTask": obj({"id":string,"status":string,"latest_ack_timestamp":nullable(integer),"checkpointed_size":integer,"state_size":integer,"end_to_end_duration":nullable(integer),"num_subtasks":integer,"num_acknowledged_subtasks":integer,"subtasks":arr(ref("CheckpointSubtask"))},
    required=["id","status","latest_ack_timestamp","checkpointed_size","state_size","end_to_end_duration","num_subtasks","num_acknowledged_subtasks"]),
 "Checkpoint": obj({"id":integer,"status":{"type":"string","enum":["IN_PROGRESS","COMPLETED","FAILED"]},"is_savepoint":boolean,"checkpoint_type":{"type":"string","enum":["CHECKPOINT","SAVEPOINT"]},"trigger_timestamp":integer,"latest_ack_timestamp":nullable(integer),"end_to_end_duration":integer,"state_size":integer,"checkpointed_size":integer,"num_subtasks":integer,"num_acknowledged_subtasks":integer,"external_path":nullable(string),"failure_message":nullable(string),"tasks":{"type":"object","additionalProperties":ref("CheckpointTask")}}),
 "Statistics": obj({"min":integer,"max":integer,"avg":integer,"p50":num,"p90":num,"p99":num}),
 "Checkpoints": obj({"counts":obj({k:integer for k in ["restored","total","in_progress","completed","failed"]}),
    "summary":obj({"state_size":ref("Statistics"),"checkpointed_size":ref("Statistics"),"end_to_end_duration":ref("Statistics")}),
    "latest":obj({"completed":None,"savepoint":None,"failed":None,"restored":nullable(obj({"id":integer,"external_path":string}))}),
    "interval_ms":integer,"history":arr(ref("Checkpoint"))}),
 "Backpressure": obj({"status":{"type":"string","enum":["ok","deprecated"]},"backpressure-level":{"type":"string","enum":["ok","low","high"]},"end-timestamp":integer,"subtasks":arr(obj({"subtask":integer,"attempt-number":integer,"backpressure-level":{"type":"string","enum":["ok","low","high"]},"ratio":num,"idleRatio":num,"busyRatio":num}))}),
 "Watermarks": arr(obj({"id":string,"value":string})),
 "SavepointTrigger": obj({"target-directory":string,"cancel-job":boolean,"triggerId":string,"formatType":{"type":"string","enum":["CANONICAL"]}},required=[],extra=False),
 "StopRequest": obj({"targetDirectory":string,"drain":boolean,"triggerId":string,"formatType":{"type":"string","enum":["CANONICAL"]}},required=[],extra=False),
 "RequestId": obj({"request-id":string}),
 "SavepointStatus": obj({"status":obj({"id":{"type":"string","enum":["IN_PROGRESS","COMPLETED"]}}),"operation":{"type":"object","properties":{"location":string,"failure-cause":obj({"class":string,"stack-trace":string})}}},required=["status"]),
 "SubmitRequest": obj({"sql":string,"parallelism":{"type":"integer","minimum":1}},required=["sql"],extra=False),
 "SubmitResponse": obj({"jobid":string}),
 "Empty": {"type":"object"},
}
# A $ref's siblings are ignored in OpenAPI 3.0, so a nullable checkpoint is the schema
# itself, inlined, with nullable.
for key in ("completed","savepoint","failed"):
    schemas["Checkpoints"]["properties"]["latest"]["properties"][key]=nullable(schemas["Checkpoint"])
def resp(schema_name, code="200", desc="OK", ct="application/json"):
    return {code:{"description":desc,"content":{ct:{"schema":ref(schema_name)}}}}
err={"401":{"description":"No or a wrong token","content":{"application/json":{"schema":ref("Error")}}},
     "404":{"description":"No such job, vertex or checkpoint","content":{"application/json":{"schema":ref("Error")}}}}
bad={"400":{"description":"The request is not valid","content":{"application/json":{"schema":ref("Error")}}}}
jid={"name":"id","in":"path","required":True,"schema":string,"description":"The job's id."}
vid={"name":"vertex","in":"path","required":True,"schema":string,"description":"The vertex's id."}
def op(summary, responses, params=None, body=None):
    o={"summary":summary,"responses":responses}
    if params: o["parameters"]=params
    if body: o["requestBody"]={"required":False,"content":{"application/json":{"schema":ref(body)}}}
    return o
paths={
 "/overview":{"get":op("The cluster: task managers, slots and jobs by state.",{**resp("Overview"),**err})},
 "/config":{"get":op("The dashboard's settings.",{**resp("Config"),**err})},
 "/taskmanagers":{"get":op("The registered task managers.",{**resp("TaskManagers"),**err})},
 "/jobs":{"get":op("Every job's id and state.",{**resp("Jobs"),**err}),
          "post":{**op("Plans a SQL script and submits its job.",{**resp("SubmitResponse","202","Submitted"),**bad,**err,"501":{"description":"This jobmanager plans no SQL","content":{"application/json":{"schema":ref("Error")}}}}),"requestBody":{"required":True,"content":{"application/json":{"schema":ref("SubmitRequest")}}}}},
 "/jobs/overview":{"get":op("Every job with its times and task counts.",{**resp("JobsOverview"),**err})},
 "/jobs/{id}":{"get":op("A job: its vertices with metrics and rates, its plan and its models.",{**resp("Job"),**err},[jid]),
               "patch":op("Cancels a job (mode=cancel).",{**resp("Empty","202","Canceling"),**bad,**err},[jid,{"name":"mode","in":"query","required":False,"schema":{"type":"string","enum":["cancel"]}}])},
 "/jobs/{id}/plan":{"get":op("The job graph.",{**resp("PlanResponse"),**err},[jid])},
 "/jobs/{id}/exceptions":{"get":op("The job's failures, newest first.",{**resp("Exceptions"),**err},[jid])},
 "/jobs/{id}/checkpoints":{"get":op("Checkpoint counts, summary, latest and history.",{**resp("Checkpoints"),**err},[jid])},
 "/jobs/{id}/checkpoints/details/{checkpoint}":{"get":op("One checkpoint with each subtask's alignment, sync and async durations.",{**resp("Checkpoint"),**err},[jid,{"name":"checkpoint","in":"path","required":True,"schema":integer}])},
 "/jobs/{id}/vertices/{vertex}/backpressure":{"get":op("Each subtask's share of time backpressured, idle and busy.",{**resp("Backpressure"),**err},[jid,vid])},
 "/jobs/{id}/vertices/{vertex}/watermarks":{"get":op("Each subtask's input and output watermark.",{**resp("Watermarks"),**err},[jid,vid])},
 "/jobs/{id}/savepoints":{"post":op("Triggers a savepoint; the same triggerId again is the same savepoint.",{**resp("RequestId","202","Triggered"),**bad,**err},[jid],"SavepointTrigger")},
 "/jobs/{id}/savepoints/{trigger}":{"get":op("Where a savepoint (or stop) is.",{**resp("SavepointStatus"),**err},[jid,{"name":"trigger","in":"path","required":True,"schema":string}])},
 "/jobs/{id}/stop":{"post":op("Stops a job with a savepoint.",{**resp("RequestId","202","Triggered"),**bad,**err},[jid],"StopRequest")},
 "/metrics":{"get":{"summary":"The cluster's metrics for Prometheus (OpenMetrics when asked for).","responses":{"200":{"description":"OK","content":{"text/plain":{"schema":string},"application/openmetrics-text":{"schema":string}}},**err}}},
 "/openapi.json":{"get":{"summary":"This document.","responses":{"200":{"description":"OK","content":{"application/json":{"schema":{"type":"object"}}}}}}},
}
doc={"openapi":"3.0.3","info":{"title":"Sluice jobmanager REST API","version":"0.1.0","description":"Flink's REST shapes where Flink has one. Errors are {\"errors\": [message]}. With an auth token, send 'Authorization: Bearer <token>'."},
 "components":{"schemas":schemas,"securitySchemes":{"token":{"type":"http","scheme":"bearer"}}},"security":[{"token":[]}],"paths":paths}
print(json.dumps(doc,indent=1))
