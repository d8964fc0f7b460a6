"""smgt-airflow: SageMaker Ground Truth labeling batches on Airflow."""
