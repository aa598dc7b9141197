# The dev stack as a Terraform user would write it with the kreuzwerker/docker
# provider (the upstream our docker provider bridges, at the same revision):
# same image, network, cache volume, limits, log options, labels, extra host,
# rendered buildkitd.toml (mirror config), healthcheck and `wait`. No smoke
# test: Terraform has no equivalent short of a local-exec provisioner, so
# "ready" for this peer is "healthy", one step short of ours.
# Used by `npm run bench -- --only peers` (bench/peers.ts), which passes every
# variable from the dev stack's parsed settings; no `terraform init` (the
# provider comes from a dev_overrides CLI config, scripts/provision/peers.sh).
terraform {
  required_providers {
    docker = {
      source = "kreuzwerker/docker"
    }
  }
}

provider "docker" {}

variable "name" {
  description = "Container and network name; the volume is NAME-cache."
  type        = string
}
variable "image" {
  type = string
}
variable "memory_mb" {
  type = number
}
variable "cpus" {
  # Written as the provider reads it back ("1.0"): "1" plans a forced
  # replacement on every run (docs/performance.md).
  type = string
}
variable "buildkitd_toml" {
  type = string
}
variable "extra_hosts" {
  type = list(object({ host = string, ip = string }))
}
variable "labels" {
  type = map(string)
}
variable "log_max_size" {
  type = string
}
variable "log_max_files" {
  type = string
}
variable "healthcheck_start_interval" {
  # "0s" on engines before Docker 25, which ignore it; the bench sets what our
  # component sets on the engine it runs against.
  type    = string
  default = "0s"
}

locals {
  socket = "unix:///run/buildkit/buildkitd.sock"
}

resource "docker_image" "buildkit" {
  name         = var.image
  keep_locally = true
}

resource "docker_network" "buildkit" {
  name   = var.name
  driver = "bridge"
  dynamic "labels" {
    for_each = var.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_volume" "cache" {
  name = "${var.name}-cache"
  dynamic "labels" {
    for_each = var.labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "docker_container" "buildkitd" {
  name         = var.name
  image        = docker_image.buildkit.image_id
  command      = ["--config", "/etc/buildkit/buildkitd.toml"]
  privileged   = true
  memory       = var.memory_mb
  memory_swap  = var.memory_mb
  cpus         = var.cpus
  restart      = "no"
  log_driver   = "json-file"
  log_opts     = { "max-size" = var.log_max_size, "max-file" = var.log_max_files }
  network_mode = docker_network.buildkit.name
  must_run     = true
  wait         = true
  wait_timeout = 120

  networks_advanced {
    name = docker_network.buildkit.name
  }

  dynamic "host" {
    for_each = var.extra_hosts
    content {
      host = host.value.host
      ip   = host.value.ip
    }
  }

  dynamic "labels" {
    for_each = var.labels
    content {
      label = labels.key
      value = labels.value
    }
  }

  volumes {
    volume_name    = docker_volume.cache.name
    container_path = "/var/lib/buildkit"
  }

  upload {
    file    = "/etc/buildkit/buildkitd.toml"
    content = var.buildkitd_toml
  }

  healthcheck {
    test           = ["CMD", "buildctl", "--addr", local.socket, "debug", "workers"]
    interval       = "5s"
    timeout        = "5s"
    retries        = 3
    start_period   = "2s"
    start_interval = var.healthcheck_start_interval
  }
}
