# Thin targets over dotnet for those who know the Go original. The README's two commands stay the primary path.
# Outputs go to artifacts/; `make all` leaves ./server and ./worker at the repo root.

DOTNET ?= dotnet
CONFIG ?= Release
SLN := JobWorker.slnx
ART := artifacts
# AOT=0 publishes the worker as a framework-dependent (JIT) app instead of NativeAOT (faster to build).
AOT ?= 1
TEST_PROJECTS := $(wildcard tests/*.Tests/*.Tests.csproj)
# Test projects that drive a real server (mTLS over loopback) end to end.
INTEGRATION_PROJECTS := $(wildcard tests/JobWorker.Server.Tests/*.csproj tests/JobWorker.Cli.Tests/*.csproj)

.PHONY: all server worker test race_test integration_test example concurrent proto lint coverage deb nuget clean

all: server worker

server:
	$(DOTNET) publish src/JobWorker.Server -c $(CONFIG) -o $(ART)/server
	printf '#!/bin/sh\nexec "$$(dirname "$$(readlink -f "$$0")")/$(ART)/server/JobWorker.Server" "$$@"\n' > server
	chmod +x server

worker:
ifeq ($(AOT),1)
	$(DOTNET) publish src/JobWorker.Cli -c $(CONFIG) -o $(ART)/worker
	cp $(ART)/worker/worker worker
else
	$(DOTNET) publish src/JobWorker.Cli -c $(CONFIG) -o $(ART)/worker-jit -p:PublishAot=false
	printf '#!/bin/sh\nexec "$$(dirname "$$(readlink -f "$$0")")/$(ART)/worker-jit/worker" "$$@"\n' > worker
	chmod +x worker
endif

test:
	$(DOTNET) test $(SLN)

# The concurrency stress tests (trait Category=Stress): races between start, stop, a job's own exit, remove and
# followers over a real server, each round checked for a consistent end and for leaks; many CLI followers.
race_test:
	$(DOTNET) test $(SLN) -c $(CONFIG) --filter "Category=Stress"

integration_test:
	@set -e; for p in $(INTEGRATION_PROJECTS); do $(DOTNET) test $$p; done

# The library used directly: ./example CMD [ARGS...]; Ctrl+C or SIGTERM stops the job and removes its cgroup.
example:
	$(DOTNET) publish examples/Example -c $(CONFIG) -o $(ART)/example
	printf '#!/bin/sh\nexec "$$(dirname "$$(readlink -f "$$0")")/$(ART)/example/Example" "$$@"\n' > example
	chmod +x example

# N followers of one job through the server: ./concurrent N [CMD [ARGS...]]
concurrent:
	$(DOTNET) publish examples/Concurrent -c $(CONFIG) -o $(ART)/concurrent
	printf '#!/bin/sh\nexec "$$(dirname "$$(readlink -f "$$0")")/$(ART)/concurrent/Concurrent" "$$@"\n' > concurrent
	chmod +x concurrent

# artifacts/deb/jobworker_<version>_amd64.deb: the self-contained server, the NativeAOT worker, the systemd unit and
# /etc/jobworker/jobworker.json (packaging/deb/build-deb.sh; layout in docs/operations.md).
deb:
	packaging/deb/build-deb.sh

# artifacts/nuget/JobWorker.Core.<version>.nupkg with the native helpers as runtimes/linux-x64/native assets.
nuget:
	$(DOTNET) pack src/JobWorker.Core -c $(CONFIG) -o $(ART)/nuget

# The wire contract is compiled by Grpc.Tools at build time; nothing generated is committed.
proto:
	$(DOTNET) build src/JobWorker.Protocol -c $(CONFIG)

# Analyzers run in the build (warnings are errors); then formatting and style must already be clean.
lint:
	$(DOTNET) build $(SLN) -c $(CONFIG) -warnaserror
	$(DOTNET) format $(SLN) --verify-no-changes

# Coverage with coverlet (XPlat Code Coverage), summarised by ReportGenerator into $(ART)/coverage/report.
coverage:
	rm -rf $(ART)/coverage
	$(DOTNET) test $(SLN) --collect "XPlat Code Coverage" --results-directory $(ART)/coverage/raw
	$(DOTNET) tool update --tool-path $(ART)/tools dotnet-reportgenerator-globaltool
	$(ART)/tools/reportgenerator -reports:"$(ART)/coverage/raw/**/coverage.cobertura.xml" \
		-targetdir:$(ART)/coverage/report -reporttypes:"Html;TextSummary"
	cat $(ART)/coverage/report/Summary.txt

clean:
	rm -rf $(ART) server worker example concurrent
	$(DOTNET) clean $(SLN)
