-- Argo CD health of an InferenceJob (edgeinference.io), read from the status the operator writes.
-- Healthy: Continuous with Ready=True, or Batch with phase Succeeded.
-- Progressing: no status yet, the operator has not seen the latest spec (observedGeneration behind),
--   a Batch still running, Progressing=True, or not ready for a reason that resolves itself.
-- Degraded: phase Failed/Invalid, Degraded=True, or Ready=False for a reason that needs a person.
local hs = {}

-- Ready=False for these reasons is not going to fix itself (reasons: api/edge_inference_api/conditions.py).
local failure_reasons = {
  HostPathNotAllowed = true,
  InvalidSpec = true,
  SecretNotFound = true,
  NodesFailed = true,
  BatchFailed = true,
}

local function describe(condition)
  local text = condition.type .. " " .. (condition.reason or "")
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    conditions[condition.type] = condition
  end
end
local ready = conditions["Ready"]
local progressing = conditions["Progressing"]
local degraded = conditions["Degraded"]

if status.phase == "Failed" or status.phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = "Phase " .. status.phase
  if ready ~= nil then
    hs.message = hs.message .. "; " .. describe(ready)
  end
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end
if ready ~= nil and ready.status == "False" and failure_reasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

local batch = obj.spec ~= nil and obj.spec.mode == "Batch"
if batch then
  if status.phase == "Succeeded" then
    hs.status = "Healthy"
    hs.message = ready ~= nil and describe(ready) or "Batch succeeded"
  else
    hs.status = "Progressing"
    hs.message = progressing ~= nil and describe(progressing) or "Batch running"
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
hs.status = "Progressing"
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
