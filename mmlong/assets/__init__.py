"""Assets: sample footage and the ImageNet labels the offline pipeline reads."""
