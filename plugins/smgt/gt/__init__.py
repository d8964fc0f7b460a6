"""Ground Truth client layer: CreateLabelingJob requests, hook, operator, sensor and trigger.

Written in the amazon provider's style (AwsBaseHook / AwsBaseOperator / AwsBaseSensor /
AwsBaseWaiterTrigger) so it can be contributed upstream; nothing here knows about batches beyond
the batch id and job level carried as tags and in the output path.
"""
